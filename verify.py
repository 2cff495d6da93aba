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

Layout: this file is the whole reward for plain-number answers ("18", "$1,234.50", "-3"; every GSM8K reward): the
API, the extraction rules below, and the comparison of plain numbers. When one side is not a plain number,
_equal hands both answers to latex_equiv.py, the LaTeX expression equivalence that MATH answers need
(normalization, lists/intervals/matrices, a small safe evaluator), imported there and only then; it gives
the same verdict on plain numbers (tested).

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

Comparison: plain numbers ("18", "-3", "1,234.50", "1 234", "$72") by value, exactly ("72.00" == "72"); a decimal
comma, 2,74 == 2.74, only against a plain decimal and where the comma cannot separate thousands. Everything
else (fractions, LaTeX, units, percent, lists, intervals, matrices, expressions, text) is latex_equiv.py's, whose
docstring lists its rules.

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
from fractions import Fraction

MAX_RESPONSE_CHARS = 10_000  # of a response, the tail is read: the answer is at the end
REL_TOL = 1e-6
_REL_TOL_EXACT = Fraction(1, 10**6)


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
# goes to latex_equiv.py.

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
    import latex_equiv  # only here: a plain-number reward never loads it
    return latex_equiv.equal(pred, gold)


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
        from latex_equiv import normalize
        print(f"normalized:      {normalize(pred)!r} vs {normalize(gold)!r}")
    print(f"correct:         {is_correct(args.response, args.gold)}")
    print(f"reward:          {reward(args.response, args.gold)}  format_reward: {format_reward(args.response)}")


if __name__ == "__main__":
    main()
