"""Property tests for verify.py: random and adversarial strings never raise and every call stays fast.

Run: python -m pytest -q tests/test_verify_property.py
"""
import time

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import latex_equiv  # noqa: E402
import verify  # noqa: E402
from verify import extract_answer, extract_gold, format_reward, is_correct, reward  # noqa: E402

MAX_SECONDS = 0.5  # per call; measured here rather than with hypothesis' deadline, which is noisy on shared CPUs

ADVERSARIAL = [
    "{" * 5000,
    "}" * 5000,
    "\\boxed{" * 2000,
    "\\boxed{" * 2000 + "1" + "}" * 2000,
    "10^{10^{10}}",
    "\\boxed{10^{10^{10^{10}}}}",
    "9" * 5000,
    "\\boxed{" + "9" * 5000 + "}",
    "#### " + "9" * 5000,
    "\\frac{" * 1000 + "1" + "}{2}" * 1000,
    "\\boxed{" + "\\frac{1}{" * 500 + "2" + "}" * 500 + "}",
    "\\sqrt{" * 1000 + "2" + "}" * 1000,
    "(" * 5000 + ")" * 5000,
    "\\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}",
    "\\boxed{" + "2^" * 3000 + "2}",
    "\\boxed{" + "-" * 5000 + "1}",
    "\\boxed{" + "1," * 3000 + "1}",
    "\\boxed{" + "1, " * 3000 + "1}",
    "1,000" * 2000,
    "\\boxed{1e999999999}",
    "\\boxed{10^{-10^{10}}}",
    "\\boxed{" + "x^{" * 300 + "x" + "}" * 300 + "}",
    "\\boxed{" + "x" * 3000 + "}",
    "\\boxed{" + "(x+1)" * 300 + "}",
    "\\boxed{" + "300!" + "}",
    "\\boxed{" + "1000000!!" + "}",
    "\\boxed{(" + ",".join(["(1,2]"] * 500) + ")}",
    "\\boxed{" + "\\cup".join(["(1,2)"] * 500) + "}",
    "\\text{" * 2000,
    "\\left(" * 2000,
    "$" * 5000,
    "####" * 3000,
    "The answer is " * 1000,
    "answer: " + "(" * 4000,
    "\\boxed{}" * 2000,
    "\\boxed 1" * 2000,
    " " * 20000 + "5",
    "\n\nQuestion:" * 1000,
    "\\boxed{\\sqrt[64]{2^{20000}}}",
    "\\boxed{(1+10^{-300})^{10^{300}}}",
    "\\boxed{" + "1/" * 2000 + "1}",
    "\\boxed{" + "\\pm" * 1000 + "}",
    "\\boxed{" + " or ".join(["1"] * 2000) + "}",
    "\\boxed{" + "a=" * 2000 + "1}",
    "0." + "3" * 5000,
    "\\boxed{\\log_{1}{1}}",
    "\\boxed{\\sin(10^{300})}",
    "\\boxed{0^0}",
    "\\boxed{0^{-1}}",
    "\u2212" * 5000 + "1",
    "\\boxed{\\{\\}}",
    "\\boxed{\\{" * 1000,
    "\\\\" * 5000,
    "\\boxed{\\begin{pmatrix}" + "&" * 1900 + "\\end{pmatrix}}",
    "\\boxed{\\begin{pmatrix}" + "1\\\\" * 600 + "\\end{pmatrix}}",
    "\\begin{pmatrix}" * 500 + "\\end{pmatrix}" * 500,
    "\\boxed{\\binom{5000}{2500}}",
    "\\boxed{\\binom{10^{9}}{5}}",
    "\\boxed{" + "\\binom{" * 300 + "}",
    "{5 \\choose " * 1000,
    "The answer is \\[" + " " * 5000,
    "The answer is $$" + "1" * 5000,
    "The answer is " + "1, " * 3000 + "which is it",
    "The answer is " + ", " * 4000 + "so it is",
    "The answer is " + "\\(" * 3000,
    "\\[" * 5000,
    "\\(" * 5000,
    "\\[1 " * 2500,
    "$a " * 3000,
    "(1 " * 3000,
    "1 or " * 2000,
    "Final Answer: " * 700 + "\\boxed{1}",
    "\\boxed{1} and " * 1000,
]

FRAGMENTS = ["\\boxed{", "\\fbox{", "}", "{", "\\frac", "\\dfrac", "\\sqrt", "\\sqrt[", "]", "^", "_", "10", "9", "0",
             "1.5", ",", ", ", "####", "The answer is", "Answer:", "\n", "\n\nQuestion:", "$", "\\$", "\\left(",
             "\\right)", "(", ")", "[", "%", "\\%", "-", "\u2212", ".", "e", "e9", "x", "=", "\\text{", "\\mbox{",
             "\\pi", "!", " and ", " or ", "\\cup", "\\{", "\\}", "\\pm", "\\infty", "\\circ", " ft", " cm", "**",
             "\\times", "\\cdot", "/", "\\in", "\\le", " ", "99999999999999999999", "\\log_", "\\sin",
             "\\binom", "\\choose", "\\begin{pmatrix}", "\\end{pmatrix}", "&", "\\\\", "\\(", "\\)", "\\[", "\\]",
             ", which", ", so", "$$"]

texts = st.one_of(
    st.text(max_size=3000),
    st.lists(st.sampled_from(FRAGMENTS), max_size=400).map("".join),
    st.sampled_from(ADVERSARIAL),
    st.tuples(st.sampled_from(ADVERSARIAL), st.lists(st.sampled_from(FRAGMENTS), max_size=50).map("".join))
    .map("".join),
)


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    elapsed = time.perf_counter() - t0
    assert elapsed < MAX_SECONDS, f"{fn.__name__} took {elapsed:.3f}s on {[a[:80] for a in args]!r}"
    return out


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(response=texts, gold=texts)
def test_random_inputs_never_raise_and_stay_fast(response, gold):
    answer = timed(extract_answer, response)
    assert answer is None or isinstance(answer, str)
    assert isinstance(timed(extract_gold, gold), str)
    assert timed(is_correct, response, gold) in (True, False)
    assert timed(is_correct, gold, response) in (True, False)
    assert timed(reward, response, gold) in (0.0, 1.0)
    assert timed(format_reward, response) in (0.0, 1.0)


@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_inputs(text):
    for other in (text, "5", "\\boxed{5}", "#### 5"):
        assert timed(is_correct, text, other) in (True, False)
        assert timed(is_correct, other, text) in (True, False)
    assert timed(is_correct, "\\boxed{" + text + "}", "\\boxed{" + text + "}") in (True, False)


@settings(max_examples=100, deadline=None, database=None)
@given(st.fractions(min_value=-10**6, max_value=10**6, max_denominator=1000))
def test_fraction_forms_agree(value):
    # The same number written as a/b, \frac{a}{b} and, when it terminates, as a decimal is always equal.
    a, b = value.numerator, value.denominator
    gold = f"\\frac{{{a}}}{{{b}}}"
    assert is_correct(f"\\boxed{{{a}/{b}}}", gold)
    assert is_correct(f"The answer is {a}/{b}.", gold)
    assert not is_correct(f"\\boxed{{{a + 1}/{b}}}", gold)
    if b in (1, 2, 4, 5, 8, 10, 16, 20, 25):
        assert is_correct(f"#### {float(value)!r}", gold)


@settings(max_examples=100, deadline=None, database=None)
@given(st.integers(min_value=0, max_value=10**12))
def test_integer_forms_agree(n):
    gold = f"#### {n:,}"
    assert is_correct(f"The answer is {n}.", gold)
    assert is_correct(f"\\boxed{{{n:,}}}", gold)
    assert is_correct(f"#### ${n}.00", gold)
    assert not is_correct(f"\\boxed{{{n * 10 + 1}}}", gold)
    assert not is_correct(f"\\boxed{{{n + 1}}}", gold)


def plain(value, decimals, style):
    """A plain number as GSM8K answers write it: value / 10**decimals with commas, $, \\$ or extra zeros."""
    sign, digits = ("-" if value < 0 else ""), str(abs(value)).rjust(decimals + 1, "0")
    whole, frac = digits[:len(digits) - decimals], digits[len(digits) - decimals:]
    if style == "commas":
        whole = f"{int(whole):,}"
    elif style == "zeros":
        whole, frac = "00" + whole, frac + "0" * (decimals > 0)
    text = sign + whole + ("." + frac if frac else "")
    return {"dollar": "$" + text, "tex_dollar": "\\$" + text}.get(style, text)


plain_numbers = st.builds(plain, st.integers(-10**12, 10**12), st.integers(0, 4),
                          st.sampled_from(["plain", "commas", "zeros", "dollar", "tex_dollar"]))


@settings(max_examples=200, deadline=None, database=None)
@given(a=plain_numbers, b_offset=st.sampled_from([0, 0, 1, -1, 10**6]), b_decimals=st.integers(0, 4),
       b_style=st.sampled_from(["plain", "commas", "zeros", "dollar", "tex_dollar"]))
def test_plain_number_path_agrees_with_latex_path(a, b_offset, b_decimals, b_style):
    # verify.py compares plain numbers itself; latex_equiv.py (normalize, evaluate) must give the same verdict on
    # them, for the same value written another way, one unit of the last digit away, and far away.
    value = verify._plain_number(a)
    assert value is not None, a
    x, ulp = value
    scaled = x * 10 ** b_decimals
    b = plain(int(scaled) + b_offset if scaled.denominator == 1 else int(scaled), b_decimals, b_style)
    assert verify._plain_number(b) is not None, b
    assert verify._equal(a, b) == latex_equiv.equal(a, b), (a, b)
    assert verify._equal(a, a) and latex_equiv.equal(a, a)
