"""latex_equiv.py: whether two answers, as written, are the same mathematical answer (MATH's LaTeX answers).

verify.py comes here only when one side is not a plain number, so a GSM8K reward never loads this file. Pure
Python (re, fractions, math), no global state, safe to call from many threads.

API
    equal(pred, gold) -> bool    two extracted answers equal after normalization: as text, or as structures of values
    normalize(s) -> str          the string-level normalization below (verify.py's CLI prints it)

Normalization: $ and \\$, the delimiters \\( \\) \\[ \\], \\left/\\right, \\! \\, \\; \\quad (never the row break
"\\\\"), \\displaystyle, \\text{}/\\mbox{}/\\textbf{}/\\mathrm{} wrappers, ^\\circ and degrees, a trailing ".", units
at the end of an answer after a space or in \\text{} (never inside a \\command: "ft" cannot turn
\\left into \\le), unicode minus, "- 3" -> "-3", \\dfrac/\\tfrac -> \\frac, \\frac12 -> \\frac{1}{2}, \\sqrt3 ->
\\sqrt{3}, \\dbinom / {n \\choose k} -> \\binom{n}{k}, 4210_{5} -> 4210_5, thousands separators 1,234 / 1{,}234 /
1\\,234 (a comma counts as a separator only before exactly three digits and outside brackets: "32, 349" and
"(100,200)" are two items; 11,\\! 111 and 1 234 are numbers), ";" between items -> ",", surrounding quotes,
\\\\frac (escaped backslashes) -> \\frac outside matrices, \\geq / >= -> \\ge (and \\le, \\ne, \\gt, \\lt),
"x = 5" / "x = 5+6 = 11" / "|AB| = 5" / "A:B = 5" / "x \\in [2,5]" -> the right-hand side, "x = 1/3 \\approx 0.33"
-> 1/3.

Comparison (verify._close decides whether two values are close):
    - numbers by value, exactly with fractions.Fraction (integers, decimals, a/b, \\frac, mixed numbers 2\\frac12
      and "2 1/2", 1.5e3, 1.5 \\times 10^{3}), otherwise through a small safe evaluator of LaTeX arithmetic (\\sqrt,
      \\sqrt[n], \\pi, ^, !, \\binom, products, \\frac of expressions) with a relative tolerance of 1e-6 and no
      absolute tolerance. A written decimal must also agree within one unit of its last digit: 0.333333333 == 1/3, but
      1.414 != \\sqrt{2} and 1000000.5 != 1000001; 1/2^99 != 1/2^98 (exact).
    - percent: "20%" equals 20 and 0.2; without a % sign nothing is rescaled (25 != 0.25, 500 != 5); no unit
      conversion (600 cents != 6 dollars).
    - matrices (pmatrix, bmatrix, matrix, array) entry by entry, whatever the spacing (a vmatrix is not a matrix);
      (a, b) / [a, b) compare in order with the same brackets ((2,5] != [2,5]); bare comma lists, \\{...\\} and
      {...} sets, unions and "2 or 3" compare as multisets; \\pm expands to two items; one relation compares side
      by side with the same operator, 5 \\ge x read as x \\le 5 (no algebra: -x > -1 != x < 1).
    - expressions with variables are evaluated at three fixed points (x+1 == 1+x, x^2-1 == (x-1)(x+1));
    - everything else, e.g. \\text{Evelyn} vs evelyn, as text: case-insensitive, spaces ignored; plain words after
      a number ("42 apples", "18 (hours)") are dropped only when the other side is a plain number.

The limits below (MAX_*) bound the time of every call: input lengths, exponents, literal sizes, token counts and
evaluator depth are capped (10^{10^{10}} is refused, not computed).
"""
import math
import re
import zlib
from fractions import Fraction

from verify import _close, _from_boxes, _match_braces

MAX_ANSWER_CHARS = 2_000     # an extracted answer longer than this is compared as text only
MAX_EVAL_CHARS = 400         # longest scalar handed to the evaluator
MAX_TOKENS = 300             # evaluator tokens per scalar
MAX_DEPTH = 40               # evaluator nesting (parentheses, braces, unary signs, exponents)
MAX_DIGITS = 1000            # longest number literal
MAX_EXACT_BITS = 20_000      # a power is computed exactly only if its result stays below this many bits
MAX_ITEMS = 64               # items of a list / tuple
MAX_BINOM = 5000             # \binom{n}{k} is computed for n up to this (under a millisecond)


# ----------------------------------------------------------------------------------------------------------------
# Normalization (string level)

_UNICODE = str.maketrans({
    "\u2212": "-", "\u2013": "-", "\u00d7": r"\times ", "\u00b7": r"\cdot ", "\u00f7": r"\div ",
    "\u221a": r"\sqrt", "\u03c0": r"\pi ", "\u221e": r"\infty ", "\u00b0": r"^\circ", "\u2264": r"\le ",
    "\u2265": r"\ge ", "\u2260": r"\ne ", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\uff0c": ",", "\u00bd": " 1/2",
})
_UNICODE_SQRT_RE = re.compile(r"\u221a\s*(\d+(?:\.\d+)?|[a-zA-Z])")
_LEFTRIGHT_RE = re.compile(r"\\(?:left|right)\s*\.|\\(?:left|right|[bB]igg?[lr]?)(?![a-zA-Z])")
_MATH_DELIM_RE = re.compile(r"\\\\|\\[()\[\]]")  # \( \) \[ \] are delimiters; "\\" (a matrix row break) is kept
_SPACES_RE = re.compile(r"\\\\|\\(?:[!,]|;|:|\s|quad(?![a-zA-Z])|qquad(?![a-zA-Z]))|~")  # "\\" is kept
_CHOOSE_RE = re.compile(r"\{\s*([^{}]{1,40}?)\s*\\choose\s*([^{}]{1,40}?)\s*\}")
_STYLE_RE = re.compile(r"\\(?:displaystyle|textstyle|scriptstyle|mathstrut|limits)(?![a-zA-Z])")
_DEGREE_RE = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree(?![a-zA-Z])")
_WRAP_RE = re.compile(r"\\(?:text(?:bf|it|rm|sf|tt|normal|up)?|mbox|hbox|math(?:rm|bf|it|sf|tt|bb|cal|frak)"
                      r"|operatorname|boldsymbol|bm)\s*\{")
_UNIT = (r"(?:(?:centi|milli|kilo)?(?:meter|metre)s?|[ckm]?m|inch(?:es)?|in|feet|foot|ft|yards?|yds?|miles?|mi"
         r"|mph|kph|(?:kilo|milli)?grams?|k?g|mg|lbs?|pounds?|ounces?|oz|tons?|(?:milli)?(?:liter|litre)s?|m?l"
         r"|gallons?|gal|cups?|quarts?|pints?|seconds?|secs?|s|minutes?|mins?|hours?|hrs?|h|days?|weeks?"
         r"|months?|years?|yrs?|dollars?|cents?|euros?|usd|degrees?|deg|radians?|units?)(?![a-zA-Z])")
_UNIT_PHRASE = (rf"(?:(?:square|sq\.?|cubic|cu\.?)\s*)?{_UNIT}(?:\s*\^\s*\{{?\s*[23]\s*\}}?)?"
                rf"(?:\s*(?:/|per\s)\s*{_UNIT})?")
_UNIT_WRAPPED_RE = re.compile(rf"\\(?:text|mbox|mathrm|textrm)\s*\{{\s*{_UNIT_PHRASE}\s*\.?\s*\}}"
                              rf"(?:\s*\^\s*\{{?\s*[23]\s*\}}?)?\s*\.?\s*$", re.I)
_UNIT_TAIL_RE = re.compile(r"(?<=[\d}).%])\s+" + _UNIT_PHRASE + r"\s*\.?\s*$", re.I)
_PERCENT_WORD_RE = re.compile(r"(?<=\d)\s*(?:percent|per\s*cent)(?![a-zA-Z])", re.I)
_MINUS_SPACE_RE = re.compile(r"(^|[\s(\[{,=])-\s+(?=[\d\\a-zA-Z(])")
_TIMES_X_RE = re.compile(r"(?<=\d)\s*x\s*(?=10\s*\^)")
_ESCAPED_CMD_RE = re.compile(r"\\\\(?=[a-zA-Z])")
_QUOTES_RE = re.compile(r'^(?:\\?")+|(?:\\?")+$')
_THOUSANDS_BANG_RE = re.compile(r"(?<=\d),\\!\s*(?=\d{3}(?!\d))")
_THOUSANDS_BRACES_RE = re.compile(r"(?<=\d)\s*\{\s*,\s*\}\s*(?=\d{3}(?!\d))")
_RELATION_RE = re.compile(r"\\(?:geq?(?:slant)?|leq?(?:slant)?|gt|lt|neq?)(?![a-zA-Z])|>=|<=|!=")
_RELATIONS = {"\\geq": "\\ge", "\\geqslant": "\\ge", "\\geslant": "\\ge", ">=": "\\ge", "\\leq": "\\le",
              "\\leqslant": "\\le", "\\leslant": "\\le", "<=": "\\le", "\\gt": ">", "\\lt": "<", "\\neq": "\\ne",
              "!=": "\\ne"}
_SPACE_THOUSANDS_RE = re.compile(r"(?<![\d.])\d{1,3}(?: \d{3})+(?![\d./])")
_BRACKET_OR_COMMA_RE = re.compile(r"[(\[{]|[)\]}]|(?<=\d),(?=\d{3}(?!\d))")


def _unwrap_text(s):
    """\\text{abc} -> abc (and \\mbox, \\textbf, \\mathrm...), nested ones too, with one brace map."""
    found = list(_WRAP_RE.finditer(s))
    if not found:
        return s
    match = _match_braces(s)
    drop = []
    for m in found:
        drop.append((m.start(), m.end()))
        close = match.get(m.end() - 1)
        if close is not None:
            drop.append((close, close + 1))
    drop.sort()
    out, pos = [], 0
    for a, b in drop:
        if a >= pos:
            out.append(s[pos:a])
            pos = b
    out.append(s[pos:])
    return "".join(out)


def _strip_units(s):
    for _ in range(3):
        t = _UNIT_WRAPPED_RE.sub("", s).strip()
        t = _UNIT_TAIL_RE.sub("", t).strip()
        if t == s or not t:
            break
        s = t
    return s


def _fix_frac_sqrt(s):
    s = re.sub(r"\\frac\s*([0-9a-zA-Z])\s*([0-9a-zA-Z])", r"\\frac{\1}{\2}", s)  # \frac12, \frac ab
    s = re.sub(r"\\frac\s*([0-9a-zA-Z])\s*(?=\{)", r"\\frac{\1}", s)             # \frac1{2}
    s = re.sub(r"(\\frac\s*\{[^{}]*\})\s*([0-9a-zA-Z])", r"\1{\2}", s)           # \frac{1}2
    return re.sub(r"\\sqrt\s*([0-9a-zA-Z])", r"\\sqrt{\1}", s)                   # \sqrt3, \sqrt x


def _drop_thousands_commas(s):
    """1,234,567 -> 1234567, but only outside brackets, where a comma separates the items of a tuple."""
    depth, cut = 0, []
    for m in _BRACKET_OR_COMMA_RE.finditer(s):
        c = m.group()
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth <= 0:
            cut.append(m.start())
    out, pos = [], 0
    for i in cut:
        out.append(s[pos:i])
        pos = i + 1
    out.append(s[pos:])
    return "".join(out)


_SEPS = {
    ",": re.compile(r"[(\[{]|[)\]}]|,"),
    "=": re.compile(r"[(\[{]|[)\]}]|(?<![<>!=:\\])=(?!=)"),
    "in": re.compile(r"[(\[{]|[)\]}]|\\in(?![a-zA-Z])"),
    "cup": re.compile(r"[(\[{]|[)\]}]|\\cup(?![a-zA-Z])"),
    "pm": re.compile(r"[(\[{]|[)\]}]|\\pm(?![a-zA-Z])"),
    "orand": re.compile(r"[(\[{]|[)\]}]|\s+(?:or|and)\s+|(?<=[)\]])\s*(?:or|and)\s*(?=[(\[])"),
    "rel": re.compile(r"[(\[{]|[)\]}]|<|>|\\(?:le|ge|ne)(?![a-zA-Z])"),
}


def _split_top(s, sep):
    """Split s at separators that are outside every bracket; brackets of any kind count, so (2,5] nests."""
    parts, depth, pos = [], 0, 0
    for m in _SEPS[sep].finditer(s):
        c = m.group()
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            parts.append(s[pos:m.start()])
            pos = m.end()
    parts.append(s[pos:])
    return parts


_NAME = r"[a-zA-Z]{1,10}(?:_\{?\w+\}?)?"
_VARLIKE_RE = re.compile(r"[a-zA-Z](?:_\{?\w+\}?)?(?:\([a-zA-Z]\))?|\\[a-zA-Z]+|\([a-zA-Z](?:\s*,\s*[a-zA-Z])*\)"
                         r"|[a-zA-Z](?:\s*[+\-]\s*[a-zA-Z])+|[a-zA-Z][a-zA-Z ]{0,20}"
                         rf"|\|[a-zA-Z]{{2,10}}\||{_NAME}(?:\s*:\s*{_NAME})+"  # |AB|, A:B
                         rf"|\\frac\{{{_NAME}\}}\{{{_NAME}\}}")


def _strip_lhs(s):
    """x = 5 -> 5, (x, y) = (1, 2) -> (1, 2), 3 \\times 4 = 12 -> 12, x = 5+6 = 11 -> 11, x \\in [2,5] -> [2,5],
    x = 1/3 \\approx 0.33 -> 1/3, x \\approx 0.33 -> 0.33; equations stay."""
    if len(_split_top(s, ",")) > 1:  # "x = 1, y = 2" is handled item by item
        return s
    if "\\approx" in s:
        s = s[:s.index("\\approx")] if len(_split_top(s, "=")) > 1 else s.replace("\\approx", "=")
    parts = _split_top(s, "=")
    if len(parts) >= 2 and parts[-1].strip():
        if _VARLIKE_RE.fullmatch(parts[0].strip()) and (
                len(parts) == 2 or not re.search(r"[a-zA-Z]", re.sub(r"\\[a-zA-Z]+", "", "".join(parts[1:])))):
            return parts[-1].strip()
        if not re.search(r"[a-zA-Z]", re.sub(r"\\[a-zA-Z]+", "", "".join(parts))):  # 3 \times 4 = 12, not 7 = 11a
            return parts[-1].strip()
    parts = _split_top(s, "in")
    if len(parts) == 2 and parts[1].strip() and _VARLIKE_RE.fullmatch(parts[0].strip()):
        return parts[1].strip()
    return s


def normalize(s):
    s = _UNICODE_SQRT_RE.sub(r"\\sqrt{\1}", s.strip()).translate(_UNICODE)  # "√12" is sqrt(12), unlike \sqrt12
    if "\\boxed" in s or "\\fbox" in s:
        inner, _ = _from_boxes(s)
        if inner:
            s = inner
    if "\\\\" in s and "\\begin" not in s:  # "\\\\frac" with escaped backslashes (JSON); "\\\\" is a row break
        s = _ESCAPED_CMD_RE.sub(r"\\", s)
    if '"' in s:
        s = _QUOTES_RE.sub("", s.strip())  # 'The final answer is "18".'
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "%")
    if ",\\!" in s:
        s = _THOUSANDS_BANG_RE.sub(",", s)  # 11,\! 111 is 11111
    s = _MATH_DELIM_RE.sub(lambda m: m.group() if m.group() == "\\\\" else "", s)
    s = _LEFTRIGHT_RE.sub("", s)
    s = _SPACES_RE.sub(lambda m: {"\\\\": "\\\\", "\\!": "", "\\,": ""}.get(m.group(), " "), s)
    s = _STYLE_RE.sub("", s)
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
    s = re.sub(r"\\[dt]binom(?![a-zA-Z])", r"\\binom", s)
    s = _CHOOSE_RE.sub(r"\\binom{\1}{\2}", s)
    s = s.replace("\\langle", "(").replace("\\rangle", ")")
    s = _DEGREE_RE.sub("", s)
    s = _strip_units(s)  # before unwrapping, while "5\text{cm}" still shows where the unit starts
    s = _unwrap_text(s)
    s = _PERCENT_WORD_RE.sub("%", s)
    s = re.sub(r"\s+%", "%", s)
    s = _strip_units(s.strip().rstrip(".").strip())
    s = _MINUS_SPACE_RE.sub(r"\1-", s)
    s = _fix_frac_sqrt(s)
    s = re.sub(r"_\{\s*(\w)\s*\}", r"_\1", s)  # 4210_{5} -> 4210_5, x_{1} -> x_1
    if "{" in s:
        s = _THOUSANDS_BRACES_RE.sub("", s).replace("{,}", ",")  # 1{,}234 and 14 {, }916
    s = _drop_thousands_commas(s)
    s = _SPACE_THOUSANDS_RE.sub(lambda m: m.group().replace(" ", ""), s)  # 1 234 567 -> 1234567
    s = _TIMES_X_RE.sub(r"\\times ", s)
    s = _RELATION_RE.sub(lambda m: _RELATIONS.get(m.group(), m.group()), s.strip().rstrip(".;:").strip())
    return _strip_lhs(s.replace(";", ",")).strip()


def _text_key(s):
    k = re.sub(r"\s+", "", s).lower().rstrip(".")
    m = re.fullmatch(r"\(([a-z])\)", k)  # multiple choice "(B)" == "B"
    return m.group(1) if m else k


# ----------------------------------------------------------------------------------------------------------------
# A small safe evaluator of LaTeX arithmetic: tokens -> tuple AST -> Fraction (exact) or float

class _EvalError(Exception):
    pass


class _NeedVars(Exception):
    pass


_TOKEN_RE = re.compile(r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|(\\[a-zA-Z]+|\\.)|(\s+)|(.)", re.S)
_GREEK = set("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi rho "
             "sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Sigma Phi Psi Omega".split())
_FUNCS = {"sin": math.sin, "cos": math.cos, "tan": math.tan, "ln": math.log, "log": math.log10, "exp": math.exp,
          "arcsin": math.asin, "arccos": math.acos, "arctan": math.atan, "sec": lambda x: 1 / math.cos(x),
          "csc": lambda x: 1 / math.sin(x), "cot": lambda x: 1 / math.tan(x)}
_CLOSE = {"(": ")", "{": "}", "[": "]"}


def _make_number(text):
    """An exact Fraction from a decimal literal, refusing sizes that would take long to build."""
    mant, _, exp = text.lower().partition("e")
    if len(mant) > MAX_DIGITS or (exp and abs(int(exp)) > MAX_DIGITS):
        raise _EvalError("number too large")
    whole, _, frac = mant.partition(".")
    value = Fraction(int((whole + frac) or "0"), 10 ** len(frac))
    if exp:
        value *= Fraction(10) ** int(exp)
    return value


def _tokenize(text):
    toks = []
    for m in _TOKEN_RE.finditer(text):
        num, cmd, space, ch = m.groups()
        if space:
            continue
        if len(toks) >= MAX_TOKENS:
            raise _EvalError("too many tokens")
        if num:
            toks.append(("num", _make_number(num)))
        elif cmd:
            name = cmd[1:]
            if name in ("frac", "sqrt", "binom"):
                toks.append((name, name))
            elif name == "pi":
                toks.append(("const", math.pi))
            elif name == "infty":
                toks.append(("inf", name))
            elif name in ("cdot", "times", "ast"):
                toks.append(("op", "*"))
            elif name == "div":
                toks.append(("op", "/"))
            elif name in _FUNCS:
                toks.append(("fn", name))
            elif name in _GREEK:
                toks.append(("var", cmd))
            else:
                raise _EvalError(f"unsupported {cmd}")
        elif ch.isascii() and ch.isalpha():
            toks.append(("var", ch))
        elif ch in "+-*/^!_":
            toks.append(("op", ch))
        elif ch in "({[":
            toks.append(("open", ch))
        elif ch in ")}]":
            toks.append(("close", ch))
        else:
            raise _EvalError(f"unsupported {ch!r}")
    return toks


class _Parser:
    """Recursive descent: expr = term (+|- term)*, term = unary ((*|/) unary | implicit product)*,
    unary = -unary | power, power = postfix (^ unary)?, postfix = primary !*."""

    def __init__(self, text):
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def nest(self, fn):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _EvalError("too deep")
        out = fn()
        self.depth -= 1
        return out

    def parse(self):
        node = self.expr()
        if self.i != len(self.toks):
            raise _EvalError("trailing tokens")
        return node

    def expr(self):
        node = self.term()
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            node = (op, node, self.term())
        return node

    def term(self):
        node = self.unary()
        while True:
            kind, val = self.peek()
            if val in ("*", "/") and kind == "op":
                self.take()
                node = (val, node, self.unary())
            elif kind in ("var", "const", "frac", "sqrt", "binom", "fn", "inf") or (kind == "open" and val != "["):
                node = ("*", node, self.power())  # 2x, 3\sqrt{13}, (1+x)(2); never two bare numbers
            else:
                return node

    def unary(self):
        kind, val = self.peek()
        if kind == "op" and val in ("-", "+"):
            self.take()
            inner = self.nest(self.unary)
            return ("neg", inner) if val == "-" else inner
        return self.power()

    def power(self):
        base = self.postfix()
        if self.peek() == ("op", "^"):
            self.take()
            return ("^", base, self.nest(self.unary))
        return base

    def postfix(self):
        node = self.primary()
        while self.peek() == ("op", "!"):
            self.take()
            node = ("!", node)
        return node

    def group(self):
        if self.peek() == ("open", "{"):
            return self.primary()
        return self.nest(self.postfix)

    def primary(self):
        kind, val = self.take()
        if kind in ("num", "const"):
            return ("num", val)
        if kind == "inf":
            return ("inf",)
        if kind == "var":
            name = val
            if self.peek() == ("op", "_"):  # x_1, a_{n}: a subscript is part of the name
                self.take()
                name += "_" + self.subscript()
            return ("var", name)
        if kind == "open":
            node = self.nest(self.expr)
            if self.take() != ("close", _CLOSE[val]):
                raise _EvalError("unbalanced")
            return node
        if kind == "frac":
            return ("/", self.group(), self.group())
        if kind == "binom":
            return ("binom", self.group(), self.group())
        if kind == "sqrt":
            index = None
            if self.peek() == ("open", "["):
                self.take()
                index = self.nest(self.expr)
                if self.take() != ("close", "]"):
                    raise _EvalError("unbalanced")
            return ("root", index, self.group())
        if kind == "fn":
            base = None
            if val == "log" and self.peek() == ("op", "_"):
                self.take()
                base = self.group()
            power = None
            if self.peek() == ("op", "^"):  # \sin^2 x is (\sin x)^2; \tan^{-1} x (arctan) is refused
                self.take()
                power = self.group()
                if power[0] != "num" or not isinstance(power[1], Fraction) or power[1] < 1 \
                        or power[1].denominator != 1:
                    raise _EvalError("function power")
            node = ("fn", val, base, self.nest(self.power))
            return node if power is None else ("^", node, power)
        raise _EvalError("unexpected token")

    def subscript(self):
        kind, val = self.take()
        if kind != "open":
            return str(val)
        parts = []
        while self.peek()[0] not in ("close", None):
            parts.append(str(self.take()[1]))
        self.take()
        return "{" + "".join(parts) + "}"


def _variables(node, out):
    if node[0] == "var":
        out.add(node[1])
    for child in node[1:]:
        if isinstance(child, tuple):
            _variables(child, out)
    return out


def _iroot(n, q):
    """Exact integer q-th root of n >= 0, or None."""
    if n < 2:
        return n
    if n.bit_length() > 1000:
        return None
    r = int(round(math.exp(math.log(n) / q)))
    for c in (r - 1, r, r + 1):
        if c >= 0 and c ** q == n:
            return c
    return None


def _finite(x):
    if isinstance(x, float) and not math.isfinite(x):
        raise _EvalError("not finite")
    return x


def _pow(b, e):
    if isinstance(b, Fraction) and isinstance(e, Fraction):
        if e.denominator == 1:
            n = e.numerator
            if b == 0:
                if n <= 0:
                    raise _EvalError("0 to a non-positive power")
                return Fraction(0)
            if b in (1, -1):
                return b ** (n % 2)
            if abs(n) * max(b.numerator.bit_length(), b.denominator.bit_length()) <= MAX_EXACT_BITS:
                return b ** n
        elif e.denominator <= 64 and b >= 0:  # (9/4)^(1/2) = 3/2 exactly when the root is exact
            num, den = _iroot(b.numerator, e.denominator), _iroot(b.denominator, e.denominator)
            if num is not None and den is not None:
                return _pow(Fraction(num, den), Fraction(e.numerator))
        elif e.denominator % 2 == 1 and b < 0:  # odd roots of negatives stay real
            return -_pow(-b, e) if e.numerator % 2 else _pow(-b, e)
    fb, fe = float(b), float(e)
    if fb == 0:
        if fe > 0:
            return 0.0
        raise _EvalError("0 to a non-positive power")
    sign = 1.0
    if fb < 0:
        if fe != int(fe):
            raise _EvalError("complex result")
        sign = -1.0 if int(fe) % 2 else 1.0
    log = fe * math.log(abs(fb))
    if abs(log) > 700:  # would overflow, or underflow to 0.0 (which would then "equal" every other tiny number)
        raise _EvalError("power out of range")
    return sign * math.exp(log)


def _eval(node, env):
    tag = node[0]
    if tag == "num":
        return node[1]
    if tag == "var":
        if node[1] not in env:
            raise _NeedVars(node[1])
        return env[node[1]]
    if tag == "inf":
        return math.inf
    if tag == "neg":
        return -_eval(node[1], env)
    if tag in ("+", "-", "*", "/", "^"):
        a, b = _eval(node[1], env), _eval(node[2], env)
        if isinstance(a, float) and math.isinf(a) or isinstance(b, float) and math.isinf(b):
            raise _EvalError("arithmetic with infinity")
        if tag == "+":
            return _finite(a + b)
        if tag == "-":
            return _finite(a - b)
        if tag == "*":
            return _finite(a * b)
        if tag == "/":
            if b == 0:
                raise _EvalError("division by zero")
            return _finite(a / b)
        return _finite(_pow(a, b))
    if tag == "root":
        index = Fraction(2) if node[1] is None else _eval(node[1], env)
        if not isinstance(index, Fraction) or index.denominator != 1 or not 1 <= index <= 64:
            raise _EvalError("bad root index")
        x = _eval(node[2], env)
        if x < 0 and index % 2 == 0:
            raise _EvalError("complex root")
        return _finite(_pow(x, 1 / index))
    if tag == "!":
        n = _eval(node[1], env)
        if not isinstance(n, Fraction) or n.denominator != 1 or not 0 <= n <= 300:
            raise _EvalError("bad factorial")
        return Fraction(math.factorial(int(n)))
    if tag == "binom":
        n, k = _eval(node[1], env), _eval(node[2], env)
        if not all(isinstance(v, Fraction) and v.denominator == 1 for v in (n, k)) or not 0 <= k <= n <= MAX_BINOM:
            raise _EvalError("bad binomial")
        return Fraction(math.comb(int(n), int(k)))
    if tag == "fn":
        x = float(_eval(node[3], env))
        y = _FUNCS[node[1]](x)
        if node[2] is not None:  # \log_b x
            y = math.log(x) / math.log(float(_eval(node[2], env)))
        return _finite(float(y))
    raise _EvalError("unknown node")


def _point(name, k):
    """Fixed, name-dependent sample points so both sides of a comparison see the same x, and x != y."""
    h = zlib.crc32(name.encode())
    return 0.5 + (h % 9973) / 9973 * 1.7 + 0.618 * k


_MIXED_RE = re.compile(r"(-?)(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}|(-?)(\d+)\s+(\d+)\s*/\s*(\d+)")
_DECIMAL_RE = re.compile(r"[-+]?\d*\.(\d+)")
_WORD_RE = re.compile(r"[a-zA-Z]{3,}")


def _numeric(core):
    """("num", value, ulp) | ("pts", values at 3 points) | None. ulp: the last written digit of a plain decimal."""
    if not core or len(core) > MAX_EVAL_CHARS:
        return None
    m = _MIXED_RE.fullmatch(core)
    if m:
        g = m.groups()
        sign, whole, num, den = g[:4] if g[1] is not None else g[4:]
        if int(den) != 0 and int(num) < int(den):  # 2\frac{1}{2} is 5/2, but 2\frac{3}{2} is a product
            value = int(whole) + Fraction(int(num), int(den))
            return "num", -value if sign else value, None
    m = _DECIMAL_RE.fullmatch(core)
    ulp = Fraction(1, 10 ** len(m.group(1))) if m and len(m.group(1)) <= MAX_DIGITS else None
    try:
        tree = _Parser(core).parse()
        names = _variables(tree, set())
        if not names:
            return "num", _eval(tree, {}), ulp
    except (_EvalError, _NeedVars, ArithmeticError, ValueError, TypeError, RecursionError):
        return None
    # Symbolic answers: only where the text looks like math, so words like "no" / "on" never become products.
    if len(names) > 6 or _WORD_RE.search(re.sub(r"\\[a-zA-Z]+", " ", core)) or not re.search(r"[\d+\-*/^\\]", core):
        return None
    pts = []
    for k in range(3):
        try:
            pts.append(float(_eval(tree, {n: _point(n, k) for n in names})))
        except (_EvalError, _NeedVars, ArithmeticError, ValueError, TypeError):
            pts.append(None)
    return ("pts", tuple(pts)) if sum(p is not None for p in pts) >= 2 else None


_NOT_A_UNIT = {"or", "and", "not", "than", "more", "less", "times", "plus", "minus", "over", "divided", "to",
               "at", "least", "most", "about", "approximately", "roughly", "nearly", "almost"}


def _drop_trailing_words(core):
    """'5 apples in total' -> '5', '5 (hours)' -> '5': plain words after a number, used only against a purely
    numeric other side."""
    toks = core.split()
    n = 0
    while toks and n < 6 and re.fullmatch(r"[a-zA-Z]+\.?|\(?[a-zA-Z]{2,}\)?\.?", toks[-1]):  # "5 (hours)" too
        if toks.pop().strip("().").lower() in _NOT_A_UNIT:  # "5 or more", "5 more than x" are not 5
            return None
        n += 1
    return " ".join(toks) if n and toks and re.search(r"\d", toks[-1]) else None


# ----------------------------------------------------------------------------------------------------------------
# Structured answers and comparison

class _Scalar:
    __slots__ = ("text", "key", "pct", "num", "loose")

    def __init__(self, s):
        s = _strip_units(_strip_lhs(s.strip())).strip()
        self.text, self.key = s, _text_key(s)
        self.pct = s.endswith("%")
        core = s[:-1].strip() if self.pct else s
        self.num = _numeric(core)
        self.loose = None
        if self.num is None:
            shorter = _drop_trailing_words(core)
            if shorter:
                loose = _numeric(shorter)
                self.loose = loose if loose and loose[0] == "num" else None


class _Seq:
    __slots__ = ("open", "close", "items")

    def __init__(self, open_, close, items):
        self.open, self.close, self.items = open_, close, items


class _Bag:
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items


def _spans(s):
    """True if the bracket at s[0] is closed by s[-1] (so "(1,2),(3,4)" is not one tuple)."""
    depth = 0
    for m in re.finditer(r"[(\[{]|[)\]}]", s):
        depth += 1 if m.group() in "([{" else -1
        if depth == 0:
            return m.end() == len(s)
    return False


_MATRIX_RE = re.compile(r"\\begin\{(p|b|B|v|V|small|)matrix\}(.*)\\end\{\1matrix\}"
                        r"|\\begin\{array\}\s*\{[^{}]*\}(.*)\\end\{array\}", re.S)


def _matrix(m, depth):
    """\\begin{pmatrix} a & b \\\\ c & d \\end{pmatrix} -> a _Seq of rows, each a _Seq of cells; p/b/plain matrices
    are the same matrix, a vmatrix (a determinant) is not."""
    kind = "det" if m.group(1) in ("v", "V") else "matrix"
    body = m.group(2) if m.group(2) is not None else m.group(3)
    lines = [line.split("&") for line in body.split("\\\\")]
    if len(lines) > 1 and len(lines[-1]) == 1 and not lines[-1][0].strip():  # a trailing "\\" before \end
        lines.pop()
    if not lines or len(lines) > MAX_ITEMS or any(len(cells) > MAX_ITEMS for cells in lines):
        return None
    return _Seq(kind, "", [_Seq("row", "", [_structure(c, depth + 1) for c in cells]) for cells in lines])


def _structure(s, depth=0):
    s = s.strip()
    if depth > 3 or not s or len(s) > MAX_ANSWER_CHARS:
        return _Scalar(s)
    m = _MATRIX_RE.fullmatch(s)
    if m is None and s[0] in "([" and s[-1] in ")]":  # \left[\begin{array}...\end{array}\right]
        m = _MATRIX_RE.fullmatch(s[1:-1].strip())
    if m and depth == 0:
        mat = _matrix(m, depth)
        if mat is not None:
            return mat
    parts = _split_top(s, "cup")
    if len(parts) > 1:
        return _bag([_structure(p, depth + 1) for p in parts])
    if s.startswith("\\{") and s.endswith("\\}"):
        return _bag([_structure(p, depth + 1) for p in _split_top(s[2:-2], ",") if p.strip()])
    if s[0] == "{" and s[-1] == "}" and _spans(s):  # {1, 2}: braces written without the backslash
        return _bag([_structure(p, depth + 1) for p in _split_top(s[1:-1], ",") if p.strip()])
    if s[0] in "([" and s[-1] in ")]" and _spans(s):
        items = _split_top(s[1:-1], ",")
        if len(items) > 1:
            return _Seq(s[0], s[-1], [_structure(_strip_lhs(p), depth + 1) for p in items])
    items = _split_top(s, ",")
    if len(items) > 1:
        items = [q for p in items for q in _split_top(p, "orand") if q.strip()]  # "19, 46, and 82"
        if len(items) > 1:
            return _bag([_structure(_strip_lhs(p), depth + 1) for p in items])
    items = _split_top(s, "orand")
    if len(items) > 1:
        nodes = [_structure(_strip_lhs(p), depth + 1) for p in items]
        if all(not isinstance(x, _Scalar) or x.num is not None for x in nodes):  # "2 or 3"; "Tom and Jerry": text
            return _Bag(nodes)
    items = _split_top(s, "pm")
    if len(items) == 2 and items[1].strip():
        a, b = items
        return _Bag([_Scalar(f"{a}+{b}"), _Scalar(f"{a}-{b}")])
    parts = _split_top(s, "rel") if _RELATION_OP_RE.search(s) else ()
    if len(parts) == 2 and parts[0].strip() and parts[1].strip():  # x \le 5, read the same as 5 \ge x
        lhs, rhs = parts
        op = s[len(lhs):len(s) - len(rhs)].strip()
        if not re.search(r"[a-zA-Z]", re.sub(r"\\[a-zA-Z]+", "", lhs)):
            lhs, op, rhs = rhs, _FLIP[op], lhs
        return _Seq(op, "", [_structure(lhs, depth + 1), _structure(rhs, depth + 1)])
    return _Scalar(s)


_RELATION_OP_RE = re.compile(r"[<>]|\\[lgn]e(?![a-zA-Z])")
_FLIP = {"<": ">", ">": "<", "\\le": "\\ge", "\\ge": "\\le", "\\ne": "\\ne"}


def _bag(items):
    return items[0] if len(items) == 1 else _Bag(items)


def _points_equal(a, b):
    pa = a[1] if a[0] == "pts" else (a[1],) * 3
    pb = b[1] if b[0] == "pts" else (b[1],) * 3
    pairs = [(x, y) for x, y in zip(pa, pb) if x is not None and y is not None]
    return len(pairs) >= 2 and all(_close(x, y, None, None) for x, y in pairs)


def _readings(num, pct, other_pct):
    """(value, ulp) pairs: with a % on one side only, 20% reads as 20 and as 0.2."""
    _, value, ulp = num
    if pct and not other_pct:
        return [(value, ulp), (value / 100, None if ulp is None else ulp / 100)]
    return [(value, ulp)]


def _scalars_equal(a, b):
    if a.key and a.key == b.key:
        return True
    na, nb = a.num, b.num
    if na is None and nb is not None and nb[0] == "num":
        na = a.loose
    elif nb is None and na is not None and na[0] == "num":
        nb = b.loose
    if na is None or nb is None:
        return False
    if na[0] == "num" and nb[0] == "num":
        return any(_close(x, y, ux, uy)
                   for x, ux in _readings(na, a.pct, b.pct) for y, uy in _readings(nb, b.pct, a.pct))
    return _points_equal(na, nb)


def _nodes_equal(a, b):
    if isinstance(a, _Scalar) and isinstance(b, _Scalar):
        return _scalars_equal(a, b)
    if isinstance(a, _Seq) and isinstance(b, _Seq):
        return (a.open == b.open and a.close == b.close and len(a.items) == len(b.items) <= MAX_ITEMS
                and all(_nodes_equal(x, y) for x, y in zip(a.items, b.items)))
    if isinstance(a, _Bag) and isinstance(b, _Bag):
        if len(a.items) != len(b.items) or len(a.items) > MAX_ITEMS:
            return False
        unused = list(b.items)
        for x in a.items:
            for j, y in enumerate(unused):
                if _nodes_equal(x, y):
                    del unused[j]
                    break
            else:
                return False
        return True
    return False


def equal(pred, gold):
    """Two answers, as written, equal after normalization: as text, or as structures of values."""
    if len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:  # too long to be a real answer: text only
        return _text_key(pred) == _text_key(gold)
    a, b = normalize(pred), normalize(gold)
    if not a or not b:
        return False
    if _text_key(a) == _text_key(b):
        return True
    return _nodes_equal(_structure(a), _structure(b))
