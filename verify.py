"""verify.py: pull the final answer out of a model's response and check it against a GSM8K or MATH gold answer.

Every reward in rl.py and every score in eval.py comes from here, so a wrong "false" teaches the policy the wrong
thing and a wrong "true" is reward hacking. Pure Python (re, fractions, math); no sympy, no signals, no global
state, so it is safe to call from many threads.

API
    extract_answer(text) -> str | None    the model's final answer (None: nothing found -> not correct)
    extract_gold(gold) -> str             text after the last "####", else the last \\boxed{}, else what an answer
                                          phrase ("The answer is X") gives, else the whole string
    is_correct(response, gold) -> bool    extract both, then compare
    reward(response, gold) -> float       1.0 correct, 0.0 otherwise (what rl.py uses)
    format_reward(response) -> float      1.0 if the answer is stated explicitly (box, ####, "the answer is"), else
                                          0.0; rl.py adds it, scaled by --format_reward, only when asked
None of them raises, whatever the input; an unexpected error inside counts as "not found" / "not correct".

Layout: part 1 is what RL needs and reads on its own: the API, the extraction rules below, and the comparison of
plain numbers ("18", "$1,234.50", "-3"), which is where a GSM8K reward ends. Part 2, below it, is the LaTeX
expression equivalence that MATH answers need (normalization, lists/intervals/matrices, a small safe evaluator);
it is reached only when one side is not a plain number, and gives the same verdict on plain numbers (tested).

Extraction (response side), in this priority:
    1. the last non-empty \\boxed{...} / \\fbox{...} (nested braces matched). Boxes separated only by "," / ";" /
       "and" / "or" (and $, spaces), by nothing on one line, or by a short phrase with "and" and no number or
       sentence end (" papers and ") form a list, so a hedge "\\boxed{20} or \\boxed{18}" matches no single gold;
       if they are all the same, one is kept. A box left open at the end (truncated generation) gives None, with no
       fallback, so a cut-off answer is never rewarded. A "Final answer is X" / "Final Answer: X" after the last box
       is read by rule 3 instead.
    2. the last "#### X" (rest of that line, cut as in 3.);
    3. the last "... answer is X" / "answers are X" / "Answer: X": a display block \\[...\\] or $$...$$ right after
       it, else the rest of that line (or the next line if that is empty), ** removed, cut at the end of the
       sentence and before a clause: ", which is the total", ", so ...", ", because ...", ", not 20" and a comma
       followed by two words end the answer; a correction or a second answer (", no wait, 6", ", or 20",
       ", and 20 ...") does not, so the answer stays a list and matches no single gold. A sentence there gives what
       follows its last "is" ("The largest $n$ is 34") or its one number ("Jane started 3 hours ago"), unless it
       hedges ("not", "or", "at least"...);
    4. the last math block ($...$ on one line, \\(...\\), \\[...\\], $$...$$; one holding prose, "$5 and he pays $",
       is money) or the last number (integers, decimals, .5, 1,234, 1 234, a/b, \\frac{a}{b}, 2 1/2, a trailing %),
       whichever comes later. A number that is part of an unfinished LaTeX expression (\\sqrt{17}, 2^{10}, 12\\pi), a
       product (12x, 2(3)), an operand ("3 * 6"), one of a hedge or a list ("either 18 or 20", "2 and 3"; "0.6 or
       60%" is one value) or inside a $...$ broken over lines is no answer (None), nor is a block after "or"; an
       item of a tuple gives the tuple ("(1, 2)"). Units stay ("18 m", "370g", "90^\\circ").
    The response is first cut at "\\n\\nQuestion:" / "\\n\\nProblem:" (base models keep writing new problems) and
    only its last 10,000 characters are read.

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

Comparison:
    - numbers by value, exactly with fractions.Fraction (integers, decimals, a/b, \\frac, mixed numbers 2\\frac12
      and "2 1/2", 1.5e3, 1.5 \\times 10^{3}), otherwise through a small safe evaluator of LaTeX arithmetic (\\sqrt,
      \\sqrt[n], \\pi, ^, !, \\binom, products, \\frac of expressions) with a relative tolerance of 1e-6 and no
      absolute tolerance. A written decimal must also agree within one unit of its last digit: 0.333333333 == 1/3, but
      1.414 != \\sqrt{2} and 1000000.5 != 1000001; 1/2^99 != 1/2^98 (exact). A decimal comma, 2,74 == 2.74, only
      against a plain decimal and where the comma cannot separate thousands.
    - percent: "20%" equals 20 and 0.2; without a % sign nothing is rescaled (25 != 0.25, 500 != 5); no unit
      conversion (600 cents != 6 dollars).
    - matrices (pmatrix, bmatrix, matrix, array) entry by entry, whatever the spacing (a vmatrix is not a matrix);
      (a, b) / [a, b) compare in order with the same brackets ((2,5] != [2,5]); bare comma lists, \\{...\\} and
      {...} sets, unions and "2 or 3" compare as multisets; \\pm expands to two items; one relation compares side
      by side with the same operator, 5 \\ge x read as x \\le 5 (no algebra: -x > -1 != x < 1).
    - expressions with variables are evaluated at three fixed points (x+1 == 1+x, x^2-1 == (x-1)(x+1));
    - everything else, e.g. \\text{Evelyn} vs evelyn, as text: case-insensitive, spaces ignored; plain words after
      a number ("42 apples", "18 (hours)") are dropped only when the other side is a plain number.

Why not an existing grader: lm-eval's GSM8K strict match takes the first "####" and compares strings ("72.00" !=
"72", "#### $72" finds nothing); Hendrycks MATH compares normalized strings ("0.5" != "\\frac12"); Qwen2.5-Math's
grader also tries x100 and /100 (accepts 500 for 5 and 25 for 0.25) and a 1e-4 relative tolerance; Math-Verify
needs $...$ or \\boxed around LaTeX and uses signal-based timeouts that fail outside the main thread. Here time is
bounded by construction instead: capped input lengths, linear brace matching instead of nested regexes, capped
exponents, literal sizes, token counts and evaluator depth (10^{10^{10}} is refused, not computed).

Tests:  python -m pytest -q tests/test_verify.py tests/test_verify_property.py
CLI:    python verify.py "so the answer is \\boxed{\\frac{1}{2}}" "#### 0.5"
"""
import argparse
import math
import re
import zlib
from fractions import Fraction

MAX_RESPONSE_CHARS = 10_000  # of a response, the tail is read: the answer is at the end
MAX_ANSWER_CHARS = 2_000     # an extracted answer longer than this is compared as text only
MAX_EVAL_CHARS = 400         # longest scalar handed to the evaluator
MAX_TOKENS = 300             # evaluator tokens per scalar
MAX_DEPTH = 40               # evaluator nesting (parentheses, braces, unary signs, exponents)
MAX_DIGITS = 1000            # longest number literal
MAX_EXACT_BITS = 20_000      # a power is computed exactly only if its result stays below this many bits
MAX_ITEMS = 64               # items of a list / tuple
MAX_BINOM = 5000             # \binom{n}{k} is computed for n up to this (under a millisecond)
REL_TOL = 1e-6
_REL_TOL_EXACT = Fraction(1, 10**6)


# ================================================================================================================
# Part 1: what RL needs. The public API, answer extraction and the comparison of plain numbers.
# ================================================================================================================

# ----------------------------------------------------------------------------------------------------------------
# Public API: never raises

def extract_answer(text):
    """The model's final answer as written (not normalized), or None if there is none."""
    try:
        return _extract(text)[0]
    except Exception:
        return None


def extract_gold(gold):
    """Text after the last '####' (GSM8K), else the last \\boxed{} (MATH), else the answer of an answer phrase, else
    the whole string ('' for None)."""
    try:
        if gold is None:
            return ""
        g = gold if isinstance(gold, str) else str(gold)
        g = g[-MAX_RESPONSE_CHARS:]
        i = g.rfind("####")
        if i != -1:
            return g[i + 4:].strip()
        if "\\boxed" in g or "\\fbox" in g:
            boxed, _ = _from_boxes(g)
            if boxed:
                return boxed
        return _from_phrase(g) or g.strip()  # a solution without a box: its "The final answer is X"
    except Exception:
        return ""


def is_correct(response, gold):
    try:
        pred = extract_answer(response)
        if pred is None:
            return False
        return _equal(pred, extract_gold(gold))
    except Exception:
        return False


def same_answer(a, b):
    """Whether two extracted answers are equal under the same rules (maj@k votes group answers with it)."""
    try:
        return a is not None and b is not None and _equal(a, b)
    except Exception:
        return False


def reward(response, gold):
    """1.0 if the response's final answer equals the gold answer, else 0.0."""
    return 1.0 if is_correct(response, gold) else 0.0


def format_reward(response, weight=1.0):
    """`weight` if the response states its answer explicitly (\\boxed, ####, 'the answer is') and is not cut off
    inside a box, else 0.0. It rewards form, not correctness, so it is off by default: rl.py multiplies it by
    --format_reward (default 0), e.g. 0.1 for a small bonus."""
    try:
        return float(weight) if _extract(response)[1] in ("boxed", "####", "phrase") else 0.0
    except Exception:
        return 0.0


# ----------------------------------------------------------------------------------------------------------------
# Extraction

_CUT_RE = re.compile(r"\n\n(?:Question|Problem):")
_BRACE_RE = re.compile(r"\\.|[{}]", re.S)
_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_WS_RE = re.compile(r"\s*")
_BOX_TOKEN_RE = re.compile(r"[^\s${}]+")
_BOX_SEP_RE = re.compile(r"(?:\s|\$|\\[()]|\\quad|\\qquad|\\,|\\text\{\s*(?:and|or)\s*\}|and|or|,|;)*")
_PHRASE_RE = re.compile(r"(?=[aA])\banswers?\**\s*(?:(?:is|are)\b\**\s*:?|:)", re.I)
_NEXT_LINE_RE = re.compile(r"\s*([^\n]*)")
_DISPLAY_RE = re.compile(r"[\s*:]*(\\\[|\$\$)(.{1,300}?)(?:\\\]|\$\$)", re.S)
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)|;|\s\(?(?:because|since|which|so that|where)\b", re.I)
_FINAL_RE = re.compile(r"final answer\**\s*(?:is\b|:)", re.I)
# "The largest $n$ is 34": a sentence stating the answer; what follows its last "is" is the answer.
_LEAD_IN_RE = re.compile(r"[a-zA-Z][^\n]{0,200}\s(?:is|are|equals|was|=)\s+(?=[-\d$\\(.])", re.I)
_WORDS_RE = re.compile(r"[a-zA-Z]{2,}")
_HEDGE_WORDS_RE = re.compile(r"\b(?:not|no|or|and|than|either|maybe|perhaps|between|least|most|except|unless|if)\b",
                             re.I)
# ", which is the total" / ", so she ..." / ", not 20": prose after the answer. A comma followed by two words (or by
# one of these) ends the answer; "1, 2, and 3", "x = 1, y = 2" and "2,125" do not match, and neither does a
# correction or a second answer (", no wait, it is 6", ", or maybe 20", ", and 20 for part b"): the answer stays a
# list, which matches no single gold.
_CLAUSE_RE = re.compile(r",\s+(?:(?:which|so|because|since|as|then|thus|hence|not|meaning|making|giving|i\.e\."
                        r"|approximately|about|roughly|around)(?![\w])"
                        r"|(?!(?:no|wait|actually|or|and|but|however|though|although|unless|except|if|instead|rather"
                        r"|oops|sorry|hmm|correction|maybe|perhaps)\b)[a-zA-Z]{2,}\s+[a-zA-Z]{2,})", re.I)
# A number as the last-number rule reads it: \frac{a}{b}, a mixed number 2 1/2, 1,234 or 1 234, 2,74, .5, a/b, a %;
# a sign only where it cannot be a binary minus ("5 - 3" has no -3).
_NUMBER_RE = re.compile(
    r"(?=[-\u2212\\.\d])"  # a plain first character lets the regex engine skip ahead to candidates
    r"(?:(?<![\w)\]}.])[-\u2212])?"
    r"(?:\\[dt]?frac\{\d+\}\{\d+\}"
    r"|(?<![\w.,])(?:\d+ \d+/\d+(?![\d/])|(?:\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?: \d{3})+(?![\d/])|\d+,\d{1,2}(?![\d,])"
    r"|\d+)(?:\.\d+)?"
    r"|\.\d+)(?:\s*/\s*\d+)?(?:\s?\\?%)?)")
# The last number is not the answer when it is part of an unfinished LaTeX expression (\sqrt{17}, 2^{10}, 12\pi,
# \frac{1+\sqrt{5}}{2}), an operand (3 * 6) or one of a hedge or a list ("either 18 or 20", "2 and 3").
_LATEX_BEFORE_RE = re.compile(r"(?:[{^_\[]|\\[a-zA-Z]+)\s*$")
_TEXT_WRAP_BEFORE_RE = re.compile(r"\\(?:text|textbf|mathbf|mathrm|mbox)\s*\{\s*$")
# 12^2, 12\pi, 12x, 3i, 2(3) are not numbers; 90^\circ, 18 m, 100g, 18 a day, 18\text{ cm} are.
_LATEX_AFTER_RE = re.compile(r"\s*(?:[\^_{}](?!\s*\{?\s*\\circ)|\\(?!(?:text\w*|mbox|quad|qquad|right)(?![a-zA-Z]))"
                             r"[a-zA-Z])|\(|[xyzni](?![a-zA-Z])")
_OPERAND_RE = re.compile(r"[\w)}\]]\s*(?:[-+*/\u00d7\u00f7]|\\times|\\cdot|\\div)\s*$")
_HEDGE_RE = re.compile(r"(?:\b(?:or|either|nor)|\d\S*\s*,?\s*and)\s+(?:maybe\s+|perhaps\s+|possibly\s+|probably\s+)?"
                       r"(?:\\?\$\s*)?$", re.I)
# A math block: $$...$$, \[...\], \(...\) or $...$ on one line; one holding prose ("$5 and he pays $") is money.
# A block ends at the next delimiter of its kind, so a run of unclosed "\[" takes linear time, not quadratic.
_MATH_RE = re.compile(r"\$\$([^$]{1,2000})\$\$|\\\[((?:(?!\\[\[\]]).){1,2000})\\\]"
                      r"|\\\(((?:(?!\\[()])[^\n]){1,2000})\\\)|(?<!\\)\$((?:[^$\\\n]|\\[^\n]){1,2000})\$", re.S)
_INLINE_RE = re.compile(r"\\\(|\\\)|(?<![\\$])\$(?!\$)")
_PROSE_RE = re.compile(r"[a-zA-Z]{2,}[\s,.;:]+[a-zA-Z]{2,}")
_TEXT_CMD_RE = re.compile(r"\\(?:text\w*|mbox|mathrm|operatorname)\s*\{[^{}]*\}|\\[a-zA-Z]+")


def _extract(text):
    """(answer, rule) with rule in "boxed", "####", "phrase", "math", "number", "truncated", None."""
    s = _prepare(text)
    if not s:
        return None, None
    if "\\boxed" in s or "\\fbox" in s:
        ans, truncated = _from_boxes(s)
        if truncated:
            return None, "truncated"
        if ans:
            final = s.lower().rfind("final answer")
            if final < max(s.rfind("\\boxed"), s.rfind("\\fbox")) or not _FINAL_RE.match(s, final):
                return ans, "boxed"
            later = _from_phrase(s)  # "\boxed{200} ... Final Answer: The final answer is $10,455$."
            return (later, "phrase") if later else (ans, "boxed")
    if "####" in s:
        ans = _from_hashes(s)
        if ans:
            return ans, "####"
    ans = _from_phrase(s)
    if ans:
        return ans, "phrase"
    return _last_math_or_number(s)


def _prepare(text):
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    m = _CUT_RE.search(text)
    if m:
        text = text[:m.start()]
    return text[-MAX_RESPONSE_CHARS:]


def _match_braces(s):
    """{index of "{": index of its "}"} in one linear pass; escaped \\{ \\} are skipped, unclosed "{" are absent."""
    match, stack = {}, []
    for m in _BRACE_RE.finditer(s):
        c = m.group()
        if c == "{":
            stack.append(m.start())
        elif c == "}" and stack:
            match[stack.pop()] = m.start()
    return match


def _boxes(s):
    """[(start, end, content)] for every \\boxed / \\fbox in order; content is None for a box that never closes."""
    out, match = [], None
    for m in _BOX_RE.finditer(s):
        i = _WS_RE.match(s, m.end()).end()
        if i < len(s) and s[i] == "{":
            if match is None:
                match = _match_braces(s)
            j = match.get(i)
            out.append((m.start(), len(s), None) if j is None else (m.start(), j + 1, s[i + 1:j]))
        elif i > m.end():  # "\boxed 5": TeX-style one-token argument, as Hendrycks' grader allows
            t = _BOX_TOKEN_RE.match(s, i)
            if t:
                out.append((m.start(), t.end(), t.group()))
    return out


def _from_boxes(s):
    """(answer, truncated). A box that is still open after the last complete one means the generation was cut."""
    boxes = _boxes(s)
    k = len(boxes) - 1
    while k >= 0:
        if boxes[k][2] is None:
            return None, True
        if boxes[k][2].strip():
            break
        k -= 1
    if k < 0:
        return None, False
    group = [boxes[k][2]]
    while k > 0:
        prev, cur = boxes[k - 1], boxes[k]
        if prev[2] is None or not prev[2].strip() or prev[1] > cur[0]:  # open, empty, or cur is nested inside prev
            break
        gap = s[prev[1]:cur[0]]
        if len(gap) > 40 or not _is_box_separator(gap):
            break
        group.append(prev[2])
        k -= 1
    group.reverse()
    if len({re.sub(r"\s+", "", c) for c in group}) == 1:
        return group[-1].strip(), False
    return ", ".join(c.strip() for c in group), False


def _is_box_separator(gap):
    """Whether the text between two boxes makes them one list: ", " / " or " / " and " (with $, spaces, \\quad), nothing
    or spaces on one line, or a short phrase joined by "and" (" papers and ", "\\text{ for part (a) and }") with no
    sentence end and no number in it."""
    if _BOX_SEP_RE.fullmatch(gap):
        return bool(re.search(r"[,;]|and|or", gap)) or "\n" not in gap
    return (re.search(r"\band\b", gap) is not None and re.search(r"[.!?](?:\s|$)|\n", gap) is None
            and not re.search(r"\d", re.sub(r"_\{?\w+\}?", "", gap)))


def _cut_clause(rest):
    """The answer at the start of `rest`, without the sentence or clause that follows it."""
    rest = rest.replace("**", "")
    m = _SENTENCE_END_RE.search(rest)
    if m:
        rest = rest[:m.start()]
    m = _CLAUSE_RE.search(rest)
    if m:
        rest = rest[:m.start()]
    return rest.strip().rstrip(",").strip()


def _from_hashes(s):
    for line in reversed(s.split("\n")):
        i = line.rfind("####")
        if i != -1:
            rest = _cut_clause(line[i + 4:])
            if rest:
                return rest
    return None


def _from_phrase(s):
    last = None
    for last in _PHRASE_RE.finditer(s):
        pass
    if last is None:
        return None
    m = _DISPLAY_RE.match(s, last.end())
    if m and m.group(2).strip():  # "The final answer is:\n\\[\n42\n\\]": the display block is the answer
        return m.group(2).strip()
    end = s.find("\n", last.end())
    rest = s[last.end():end if end != -1 else len(s)]
    if not rest.replace("*", "").strip() and end != -1:  # "The final answer is:\n\n42"
        rest = _NEXT_LINE_RE.match(s, end, min(len(s), end + 300)).group(1)
    rest = _answer_of_sentence(_cut_clause(rest).lstrip(":=").strip())
    if not re.sub(r"\\boxed\{\s*\}|\$|\s", "", rest):
        return None
    return rest


def _answer_of_sentence(rest):
    """'The largest $n$ is 34' -> '34', 'Jane started growing Sphere 3 hours ago' -> '3'; a hedge ('not', 'or',
    'at least'...) or a second number keeps the sentence, which then matches no plain gold."""
    if not rest[:1].isalpha() or len(_WORDS_RE.findall(rest)) < 3 or _HEDGE_WORDS_RE.search(rest):
        return rest
    m = _LEAD_IN_RE.match(rest)
    if m:
        return rest[m.end():]
    numbers = list(_NUMBER_RE.finditer(rest))
    if len(numbers) == 1:
        return _number_answer(rest, numbers[0]) or rest
    return rest


def _last_math_or_number(s):
    """(answer, rule): the last math block or the last number, whichever comes later; (None, None) if neither."""
    block = None
    for m in _MATH_RE.finditer(s):
        content = next(g for g in m.groups() if g is not None)
        if content.strip() and not _PROSE_RE.search(_TEXT_CMD_RE.sub(" ", content)):
            block = m
    last = None
    for last in _NUMBER_RE.finditer(s):
        pass
    if block is not None and (last is None or last.start() < block.end()):
        if _HEDGE_RE.search(s[max(0, block.start() - 60):block.start()]):  # "$18$ or $20$"
            return None, None
        return next(g for g in block.groups() if g is not None).strip(), "math"
    ans = None if last is None else _number_answer(s, last)
    return (ans, "number") if ans else (None, None)


def _number_answer(s, m):
    """The last number m as the answer: the tuple it belongs to, or None where it cannot be the answer."""
    start, end = m.start(), m.end()
    group = _enclosing_group(s, start, end)
    if group is not None:
        i, j = group
        inner = s[i + 1:j].strip()
        if "," in inner and not re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", inner):  # (1,2) a tuple, (1,234) not
            return s[i:j + 1]
        if i > 0 and re.match(r"[\w)\]}]", s[i - 1]):  # 2(3) is a product, f(3) a function's value
            return None
    before, after = s[max(0, start - 60):start], s[end:end + 20]
    if _LATEX_BEFORE_RE.search(before) and not _TEXT_WRAP_BEFORE_RE.search(before):
        return None
    if _LATEX_AFTER_RE.match(after) and not (after.lstrip().startswith("}") and _TEXT_WRAP_BEFORE_RE.search(before)):
        return None
    if _OPERAND_RE.search(before):
        return None
    hedge = _HEDGE_RE.search(before)
    if hedge:  # "18 or 20" is a hedge; "0.6, or 60%" says the same number twice
        other = None
        for other in _NUMBER_RE.finditer(before, 0, hedge.start()):
            pass
        if other is None or not _equal(other.group(), m.group()):
            return None
    if _in_broken_inline(s, start):
        return None  # inside "$ ... $" or "\\( ... \\)" broken over lines: neither a math block nor a sentence
    return m.group().strip().replace("\u2212", "-")


def _in_broken_inline(s, start):
    """Whether start lies inside an inline math span, $...$ or \\(...\\), that runs over a line break; a $ beside a
    digit ("$5", "97$") is money, not a delimiter."""
    opened, begin = None, max(0, start - 2000, s.rfind("\n\n", 0, start))  # no math span is longer or has a blank line
    for d in _INLINE_RE.finditer(s, begin):
        if d.group() == "$" and (s[d.start() - 1:d.start()].isdigit() or s[d.end():d.end() + 1].isdigit()):
            continue
        if d.start() >= start:
            return opened is not None and d.group() != "\\(" and "\n" in s[opened:d.start()]
        if d.group() == "\\(" or (d.group() == "$" and opened is None):
            opened = d.end()
        else:
            opened = None
    return False


def _enclosing_group(s, start, end):
    """(i, j): the innermost ( or [ open before start and its closing bracket after end, within 200 characters."""
    depth = 0
    for i in range(start - 1, max(-1, start - 200), -1):
        c = s[i]
        if c in ")]":
            depth += 1
        elif c in "([":
            if depth == 0:
                break
            depth -= 1
    else:
        return None
    depth = 0
    for j in range(end, min(len(s), end + 200)):
        c = s[j]
        if c in "([":
            depth += 1
        elif c in ")]":
            if depth == 0:
                return i, j
            depth -= 1
    return None


# ----------------------------------------------------------------------------------------------------------------
# Number comparison: a GSM8K answer and most RL rewards end here; anything that is not a plain number on both sides
# goes to the LaTeX equivalence of part 2.

_PLAIN_NUMBER_RE = re.compile(r"\s*(?:\\?\$\s*)?(-?(?:[1-9]\d{0,2}(?:,\d{3})+|[1-9]\d{0,2}(?: \d{3})+|\d+))(?:\.(\d+))?"
                              r"\s*")
_DECIMAL_COMMA_RE = re.compile(r"\s*(-?\d+),(\d+)\s*")


def _plain_number(s):
    """'18' / '-3' / '1,234.50' / '1 234' / '$72' / '\\$72.00' -> (exact value, one unit of its last decimal or None);
    None for anything else."""
    m = _PLAIN_NUMBER_RE.fullmatch(s) if len(s) <= 100 else None
    if m is None:
        return None
    decimals = m.group(2) or ""
    scale = 10 ** len(decimals)
    value = Fraction(int(m.group(1).replace(",", "").replace(" ", "") + decimals), scale)
    return value, Fraction(1, scale) if decimals else None


def _close(x, y, ux, uy):
    """x == y for exact values; otherwise within REL_TOL, and a written decimal (ulp = its last digit) is only an
    approximation good to that digit: 0.333333333 == 1/3, but 1000000.5 != 1000001."""
    if isinstance(x, Fraction) and isinstance(y, Fraction):
        if x == y or ux is None and uy is None:  # exact values, no written decimal: no tolerance at all
            return x == y
        diff = abs(x - y)
        return diff <= _REL_TOL_EXACT * max(abs(x), abs(y)) and all(u is None or diff <= u for u in (ux, uy))
    try:
        fx, fy = float(x), float(y)
    except OverflowError:
        return False
    if math.isinf(fx) or math.isinf(fy) or math.isnan(fx) or math.isnan(fy):
        return fx == fy
    diff = abs(fx - fy)
    if diff > REL_TOL * max(abs(fx), abs(fy)):
        return False
    return all(u is None or diff <= float(u) * (1 + 1e-9) for u in (ux, uy))


def _decimal_comma(s, other):
    """'2,74' read as 2.74, only against a plain decimal ('2.74') and where the comma cannot separate thousands."""
    m = _DECIMAL_COMMA_RE.fullmatch(s) if len(s) <= 100 and "." in other else None
    if m and (len(m.group(2)) != 3 or m.group(1).lstrip("-") == "0"):
        return _plain_number(f"{m.group(1)}.{m.group(2)}")
    return None


def _equal(pred, gold):
    a, b = _plain_number(pred), _plain_number(gold)
    if (a is None) != (b is None):  # "1000,99" against "1000.99"
        a, b = a or _decimal_comma(pred, gold), b or _decimal_comma(gold, pred)
    if a is not None and b is not None:
        return _close(a[0], b[0], a[1], b[1])
    return _latex_equal(pred, gold)


# ================================================================================================================
# Part 2: LaTeX expression equivalence (MATH answers), reached only when one side is not a plain number:
# normalization, structures (lists, tuples, intervals, matrices), and a small safe evaluator.
# ================================================================================================================

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


def _normalize(s):
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


def _latex_equal(pred, gold):
    """Two answers, as written, equal after normalization: as text, or as structures of values."""
    if len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:  # too long to be a real answer: text only
        return _text_key(pred) == _text_key(gold)
    a, b = _normalize(pred), _normalize(gold)
    if not a or not b:
        return False
    if _text_key(a) == _text_key(b):
        return True
    return _nodes_equal(_structure(a), _structure(b))


def main():
    parser = argparse.ArgumentParser(description="Extract the final answer from a response and check it against a "
                                                 "gold answer (GSM8K '#### X', MATH '\\boxed{X}', or plain).")
    parser.add_argument("response", help="the model's response text")
    parser.add_argument("gold", help="the gold answer or full gold solution")
    args = parser.parse_args()
    pred, rule = _extract(args.response)
    gold = extract_gold(args.gold)
    print(f"response answer: {pred!r} (rule: {rule})")
    print(f"gold answer:     {gold!r}")
    if pred is not None:
        print(f"normalized:      {_normalize(pred)!r} vs {_normalize(gold)!r}")
    print(f"correct:         {is_correct(args.response, args.gold)}")
    print(f"reward:          {reward(args.response, args.gold)}  format_reward: {format_reward(args.response)}")


if __name__ == "__main__":
    main()
