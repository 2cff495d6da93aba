"""Table-driven tests for verify.py, written from the rules in its docstring (issue 5), the reward hacks and misses
of issue 24, and Math-Verify's own test suite as an external reference (tests/math_verify_cases.jsonl).

Run: python -m pytest -q tests/test_verify.py tests/test_verify_property.py
"""
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import latex_equiv
import verify
from verify import extract_answer, extract_gold, format_reward, is_correct, reward


def long_cot(final, n_chars=4000):
    """A realistic chain of thought with many numbers, ending in `final`."""
    steps = []
    i = 0
    while sum(len(s) for s in steps) < n_chars - len(final):
        i += 1
        steps.append(f"Step {i}: Janet had {i * 7} eggs, sold {i * 3} at $2.50 each for ${i * 3 * 2.5:.2f}, "
                     f"so now she has {i * 4} left and {i * 11 % 13}/{i + 1} of a basket; 1,{i:03d} total so far.\n")
    return "".join(steps) + final


def short_id(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ----------------------------------------------------------------------------------------------------------------
# extract_answer: (response, expected answer string or None)

EXTRACT = [
    # 1. boxes
    (r"so the answer is \boxed{42}.", "42"),
    (r"\boxed{1} then later \boxed{2}", "2"),
    (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt{3}}{2}"),
    (r"nested \boxed{\{1, 2\}} set", r"\{1, 2\}"),
    (r"\fbox{7}", "7"),
    (r"\boxed {9}", "9"),
    (r"\boxed 5$", "5"),
    (r"\boxed{3} and finally \boxed{}", "3"),                  # last NON-empty box
    (r"\boxed{2} and \boxed{3}", "2, 3"),                       # adjacent boxes form a list
    (r"$\boxed{2}$, $\boxed{-3}$", "2, -3"),
    (r"\boxed{5}, \boxed{5}", "5"),                             # identical repeats collapse
    (r"\boxed{4}. Wait, that is wrong. \boxed{5}", "5"),        # words between: not a list
    (r"\boxed{4}\n\boxed{5}", "5"),                             # no separator: not a list
    (r"\boxed{12", None),                                       # truncated box gives nothing, no fallback
    (r"\boxed{3} but then \boxed{\frac{1}{2", None),            # truncated after a complete box
    (r"\boxed{\boxed{8}}", "8"),
    (r"the answer is \boxed{x = 5}, #### 4", "x = 5"),          # box beats ####
    # 2. ####
    ("blah 3 + 4 = 7\n#### 7", "7"),
    ("#### 1\nmore\n#### 2,125\n", "2,125"),
    ("#### $72", "$72"),
    ("#### 72\n####\n", "72"),                                  # last NON-empty ####
    ("The answer is 5\n#### 6", "6"),                           # #### beats "the answer is"
    # 3. answer phrases
    ("The final answer is 42.", "42"),
    ("The answer is: 17", "17"),
    ("**Answer:** 18", "18"),
    ("**Final Answer**: 19 dollars", "19 dollars"),
    ("Answer: $\\frac{1}{2}$.", "$\\frac{1}{2}$"),
    ("The answer is 3. Then 10 more words 99", "3"),
    ("The answer is 41 because 40 + 1 = 41", "41"),
    ("The final answer is:\n\n  23\n", "23"),
    ("the answer is 5, no wait, the answer is 6", "6"),
    ("The answer is (B).", "(B)"),
    # 3b. the answer ends where a clause, a display block or a second sentence starts (audit, issue 21)
    ("The answer is 18, which is the total.", "18"),
    ("The answer is $18, so she earns $18 a day.", "$18"),
    ("The answer is 18 hours, because she works 6 hours a day.", "18 hours"),
    ("The answer is 18, not 20.", "18"),
    ("The answer is 2,125, which she saved.", "2,125"),
    ("The answer is x = 1, y = 2.", "x = 1, y = 2"),          # a comma before a name is not a clause
    ("The answer is 1, 2, and 3.", "1, 2, and 3"),
    ("The answer is 18, 20 if we count Sunday.", "18, 20 if we count Sunday"),
    ("The answer is \\(\\sqrt{2}\\), approximately 1.414.", "\\(\\sqrt{2}\\)"),
    ("The final answer is:\n\\[\n\\frac{7}{2}\n\\]\nwhich is 3.5.", "\\frac{7}{2}"),
    ("The answer is $$18$$", "18"),
    ("The answers are $2$ and $3$.", "$2$ and $3$"),
    ("#### 18, which is the total", "18"),
    ("\\boxed{18} or \\boxed{20}", "18, 20"),                     # a hedge between boxes is a list
    ("\\boxed{18} \\text{ or } \\boxed{18}", "18"),
    # 4. last number
    ("First 18, then 25, so 30 in total", "30"),
    ("the result is 1,234 apples", "1,234"),
    ("she pays $-3 back... no, x = -4", "-4"),
    ("5 - 3", None),                                           # an operand is not the answer (nor is -3)
    ("it is 3/4 of the cake", "3/4"),
    ("the probability is \\frac{1}{6}", "\\frac{1}{6}"),
    ("grew by 20%", "20%"),
    ("pi is about 3.14159", "3.14159"),
    ("x2 and y", None),                                         # a digit glued to a name is not a number
    ("so 12x", None),                                           # nor a coefficient
    ("it is 2(3)", None),                                       # a product
    ("The distance is 18 m.", "18"),                            # a unit after a space is not a variable
    ("She makes 18 a day", "18"),
    ("so the angle is 90^\\circ", "90"),
    ("so 18 (hours)", "18"),
    ("She needs 370g of flour.", "370"),                         # an attached unit too, but not a variable
    ("so 3i", None),
    ("x=97$\nGreg spent 97$ on a shirt.", "97"),                # a $ beside a digit is money, not math
    ("That is 0.60 or 60% off", "60%"),                          # the same value said twice is no hedge
    # nothing
    ("", None),
    ("I do not know.", None),
    (None, None),
    # cut where base models start a new problem
    ("The answer is 5.\n\nQuestion: what is 3+4?\nAnswer: 7", "5"),
    ("so 12\n\nProblem: next one has 99", "12"),
]


@pytest.mark.parametrize("text,expected", EXTRACT, ids=short_id)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


GOLD = [
    ("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "72"),
    ("#### 2,125", "2,125"),
    ("so $\\frac{1}{2}$, i.e. $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("We get \\boxed{2} and \\boxed{3}.", "2, 3"),
    ("\\frac{3}{4}", "\\frac{3}{4}"),
    ("  Evelyn ", "Evelyn"),
    (72, "72"),
    (None, ""),
    ("#### 1\n#### 2", "2"),
]


@pytest.mark.parametrize("gold,expected", GOLD)
def test_extract_gold(gold, expected):
    assert extract_gold(gold) == expected


# ----------------------------------------------------------------------------------------------------------------
# is_correct: (response, gold, expected)

CORRECT = [
    # GSM8K style: values, not strings
    ("#### 72", "#### 72", True),
    ("#### 72.00", "#### 72", True),
    ("#### $72", "#### 72", True),
    ("#### \\$72", "72", True),
    ("#### 72 dollars", "72", True),
    ("The answer is 2125.", "#### 2,125", True),
    ("The answer is 2,125.", "#### 2,125", True),
    ("The answer is 2, 125.", "#### 2,125", False),            # a space after the comma makes a list
    ("#### 1,000,000", "1000000", True),
    ("#### 1,000.50", "1000.5", True),
    ("#### 18.0", "18", True),
    ("#### 0018", "18", True),
    ("#### 10", "#### 100", False),
    ("#### 100", "#### 10", False),
    ("#### 500", "5", False),
    ("#### 5", "500", False),
    ("#### 71", "72", False),
    ("#### 72.5", "72", False),
    ("#### 7.2", "72", False),
    ("#### -72", "72", False),
    ("#### 72", "-72", False),
    ("#### 1000001", "1000000", False),                        # no tolerance between exact integers
    ("#### 1000000.5", "1000001", False),                      # a decimal is only good to its last digit
    ("#### 123456789012345678901", "123456789012345678900", False),
    # boxes
    ("\\boxed{\\frac{1}{2}}", "\\boxed{\\frac{1}{2}}", True),
    ("\\boxed{1/2}", "so $\\boxed{\\frac{1}{2}}$", True),
    ("\\boxed{0.5}", "\\boxed{\\frac{1}{2}}", True),
    ("\\boxed{.5}", "\\frac12", True),
    ("\\boxed{\\dfrac{1}{2}}", "\\frac{1}{2}", True),
    ("\\boxed{\\tfrac12}", "0.5", True),
    ("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}", True),
    ("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}", False),
    ("\\boxed{\\frac{28}{6}}", "14/3", True),
    ("\\boxed{4.67}", "14/3", False),
    ("\\boxed{2} \\boxed{5}", "2", False),                      # last box wins: 5
    ("first \\boxed{2}, later I think \\boxed{5}", "5", True),
    ("\\boxed{5", "5", False),                                   # truncated
    ("\\boxed{\\frac{1}{2", "\\frac{1}{2}", False),
    ("\\boxed{}", "0", False),
    ("The answer is $\\boxed{\\text{(C)}}$", "C", True),
    ("\\boxed{C}", "\\text{(C)}", True),
    ("\\boxed{B}", "\\text{(C)}", False),
    # answer only in the middle of the text
    ("First 18, then 25 more, giving 30 in all.", "25", False),
    ("We need 25 here. After that, the total is 31", "25", False),
    (long_cot("So the total is 1187."), "1187", True),
    (long_cot("So the total is 1187."), "7", False),
    (long_cot("So the total is \\boxed{1187}."), "#### 1,187", True),
    (long_cot("The final answer is 64"), "65", False),
    (long_cot(""), "99999", False),
    # empty / no number / no answer
    ("", "5", False),
    ("   ", "5", False),
    ("I cannot solve this.", "5", False),
    (None, "5", False),
    ("#### 5", "", False),
    ("#### 5", None, False),
    ("5", "####", False),
    # base-model continuation is cut
    ("The answer is 5.\n\nQuestion: What is 3+4?\nThe answer is 7.", "5", True),
    ("The answer is 5.\n\nQuestion: What is 3+4?\nThe answer is 7.", "7", False),
    ("so x = 3\n\nProblem: solve 2y = 10. y = 5", "3", True),
    # normalization: dollars, left/right, spacing, display style, text wrappers
    ("\\boxed{\\$18}", "18", True),
    ("\\boxed{18 \\text{ dollars}}", "18", True),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "(3, \\frac{\\pi}{2})", True),
    ("\\boxed{\\left[2, 5\\right)}", "[2,5)", True),
    ("\\boxed{\\displaystyle \\frac{3}{4}}", "0.75", True),
    ("\\boxed{3\\!\\,\\;4}", "34", True),
    ("\\boxed{\\mbox{Monday}}", "monday", True),
    ("\\boxed{\\textbf{Yes}}", "yes", True),
    ("\\boxed{\\text{Evelyn}}", "Evelyn", True),
    ("\\boxed{\\text{EVELYN}}", "\\text{Evelyn}", True),
    ("\\boxed{\\text{Evelin}}", "\\text{Evelyn}", False),
    ("The answer is Evelyn.", "\\text{Evelyn}", True),
    ("The answer is no solution", "\\text{No Solution}", True),
    ("\\boxed{\\text{no}}", "\\text{on}", False),              # words are not products of variables
    # degrees and units (on word boundaries only)
    ("\\boxed{90^\\circ}", "90", True),
    ("\\boxed{90^{\\circ}}", "90", True),
    ("\\boxed{90\u00b0}", "90", True),
    ("The answer is 90 degrees.", "90", True),
    ("\\boxed{45^\\circ}", "90", False),
    ("\\boxed{12 \\text{ ft}}", "12", True),
    ("\\boxed{12\\text{ft}^2}", "12", True),
    ("\\boxed{12 \\mbox{ square feet}}", "12", True),
    ("\\boxed{12 cm}", "12", True),
    ("\\boxed{60 \\text{ mph}}", "60", True),
    ("\\boxed{5 hours}", "5", True),
    ("The answer is 42 apples.", "42", True),
    ("The answer is 42 apples.", "43", False),
    ("\\boxed{600 \\text{ cents}}", "6 dollars", False),       # no unit conversion
    ("\\boxed{6 \\text{ dollars}}", "\\$6", True),
    ("\\boxed{2m}", "2", False),                                # "2m" is a product, not 2 metres
    ("\\boxed{\\text{2 dogs}}", "\\text{2 cats}", False),
    # unicode minus, "- 3"
    ("\\boxed{\u22123}", "-3", True),
    ("\\boxed{- 3}", "-3", True),
    ("\\boxed{-3}", "3", False),
    ("\\boxed{- \\frac{1}{2}}", "-0.5", True),
    # \frac12 and \sqrt3 forms
    ("\\boxed{\\frac12}", "\\frac{1}{2}", True),
    ("\\boxed{\\frac1{2}}", "1/2", True),
    ("\\boxed{\\frac{1}2}", "1/2", True),
    ("\\boxed{\\sqrt3}", "\\sqrt{3}", True),
    ("\\boxed{\\frac{\\sqrt3}{2}}", "\\frac{\\sqrt{3}}{2}", True),
    ("\\boxed{\\sqrt{2}/2}", "\\frac{1}{\\sqrt{2}}", True),
    ("\\boxed{\\sqrt{117}}", "3\\sqrt{13}", True),
    ("\\boxed{3\\sqrt{13}}", "\\sqrt{117}", True),
    ("\\boxed{3\\sqrt{13}}", "\\sqrt{118}", False),
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", True),
    ("\\boxed{\\sqrt[3]{27}}", "3", True),
    ("\\boxed{\\sqrt[3]{-8}}", "-2", True),
    ("\\boxed{\\sqrt{\\frac{9}{4}}}", "1.5", True),
    # thousands separators
    ("\\boxed{1,234}", "1234", True),
    ("\\boxed{1{,}234}", "1234", True),
    ("\\boxed{1\\,234}", "1234", True),
    ("\\boxed{1,234,567}", "1234567", True),
    ("\\boxed{32, 349}", "32349", False),
    ("\\boxed{32, 349}", "32, 349", True),
    ("\\boxed{32, 349}", "349, 32", True),
    ("\\boxed{1,2345}", "12345", False),                         # a comma before four digits is a list
    ("\\boxed{(100,200)}", "(100, 200)", True),                   # inside brackets: a tuple, not 100200
    # exact values, tolerance, decimals
    ("\\boxed{0.333333333}", "\\frac{1}{3}", True),
    ("\\boxed{0.6666667}", "\\frac{2}{3}", True),
    ("\\boxed{0.33}", "\\frac{1}{3}", False),
    ("\\boxed{0.3333}", "\\frac{1}{3}", False),
    ("\\boxed{1.414}", "\\sqrt{2}", False),
    ("\\boxed{1.41421356}", "\\sqrt{2}", True),
    ("\\boxed{3.14}", "\\pi", False),
    ("\\boxed{3.14159265}", "\\pi", True),
    ("\\boxed{2\\pi}", "\\frac{4\\pi}{2}", True),
    ("\\boxed{\\frac{1}{2^{99}}}", "\\frac{1}{2^{98}}", False),
    ("\\boxed{1/2^99}", "1/2^98", False),
    ("\\boxed{2^{-99}}", "\\frac{1}{2^{99}}", True),
    ("\\boxed{2^{10}}", "1024", True),
    ("\\boxed{2^10}", "1024", True),
    ("\\boxed{0.1+0.2}", "0.3", True),
    ("\\boxed{0}", "0.0000001", False),                         # no absolute tolerance
    ("\\boxed{10^{-7}}", "10^{-8}", False),
    ("\\boxed{5!}", "120", True),
    ("\\boxed{3 \\cdot 4}", "12", True),
    ("\\boxed{3 \\times 4 = 12}", "12", True),
    # percent
    ("\\boxed{20\\%}", "20", True),
    ("\\boxed{20\\%}", "0.2", True),
    ("\\boxed{20}", "20\\%", True),
    ("\\boxed{0.2}", "20\\%", True),
    ("The answer is 20 percent", "0.2", True),
    ("\\boxed{20\\%}", "0.2\\%", False),
    ("\\boxed{25}", "0.25", False),                              # no rescaling without a % sign
    ("\\boxed{0.25}", "25", False),
    ("\\boxed{500}", "5", False),
    ("\\boxed{5}", "500", False),
    ("\\boxed{2000\\%}", "0.2", False),
    # scientific notation
    ("\\boxed{1.5e3}", "1500", True),
    ("\\boxed{1.5E+3}", "1500", True),
    ("\\boxed{1.5 \\times 10^{3}}", "1500", True),
    ("\\boxed{1.5 \\cdot 10^3}", "1.5e3", True),
    ("\\boxed{1.5 x 10^3}", "1500", True),
    ("\\boxed{6.02 \\times 10^{23}}", "6.02e23", True),
    ("\\boxed{3 \\times 10^{8}}", "3 \\times 10^{9}", False),
    ("\\boxed{1.5e3}", "150", False),
    # mixed numbers
    ("\\boxed{2 \\frac{1}{2}}", "5/2", True),
    ("\\boxed{2\\frac{1}{2}}", "2.5", True),
    ("The answer is 2 1/2 cups", "\\frac{5}{2}", True),
    ("\\boxed{-2\\frac12}", "-5/2", True),
    ("\\boxed{2\\frac{1}{2}}", "1", False),                      # a mixed number, not 2 * 1/2
    ("\\boxed{2\\frac{\\sqrt{3}}{2}}", "\\sqrt{3}", True),        # not a mixed number: a product
    # x = ..., equations
    ("\\boxed{x = 5}", "5", True),
    ("\\boxed{k=3}", "3", True),
    ("The answer is x = 5.", "5", True),
    ("\\boxed{x = 5}", "6", False),
    ("\\boxed{y = 2x + 3}", "y=2x+3", True),
    ("\\boxed{2x + 3}", "y = 2x + 3", True),
    ("\\boxed{x \\in [2,5]}", "[2,5]", True),
    ("\\boxed{(x, y) = (1, 2)}", "(1,2)", True),
    ("\\boxed{m+n=17}", "17", True),
    # lists (multisets), tuples (ordered), intervals (brackets kept)
    ("\\boxed{1, -2}", "-2, 1", True),
    ("\\boxed{1, 2, 3}", "3,2,1", True),
    ("\\boxed{1, 2}", "1, 2, 2", False),
    ("\\boxed{1, 1, 2}", "1, 2, 2", False),
    ("\\boxed{1, 2}", "1", False),
    ("\\boxed{1}", "1, 2", False),
    ("\\boxed{2} and \\boxed{3}", "2, 3", True),
    ("\\boxed{2} and \\boxed{3}", "2", False),
    ("\\boxed{2} and \\boxed{3}", "3", False),
    ("\\boxed{x = 2, x = -3}", "-3, 2", True),
    ("\\boxed{2 \\text{ or } -3}", "-3, 2", True),
    ("\\boxed{\\pm 2}", "2, -2", True),
    ("\\boxed{1 \\pm \\sqrt{2}}", "1-\\sqrt2, 1+\\sqrt2", True),
    ("\\boxed{\\{1, 2\\}}", "2, 1", True),
    ("\\boxed{(1, 2)}", "(1, 2)", True),
    ("\\boxed{(2, 1)}", "(1, 2)", False),
    ("\\boxed{(1, 2, 3)}", "(1,2,3)", True),
    ("\\boxed{(1, 2)}", "(1, 2, 3)", False),
    ("\\boxed{(1,2), (3,4)}", "(3,4),(1,2)", True),
    ("\\boxed{(2,5]}", "[2,5]", False),
    ("\\boxed{[2,5]}", "(2,5]", False),
    ("\\boxed{(2,5)}", "(2,5)", True),
    ("\\boxed{[2, 5]}", "[2,5]", True),
    ("\\boxed{[5, 2]}", "[2,5]", False),
    ("\\boxed{(-\\infty, 2]}", "(-\\infty,2]", True),
    ("\\boxed{(-\\infty, 2)}", "(-\\infty,2]", False),
    ("\\boxed{(-\\infty, 2) \\cup (3, \\infty)}", "(3,\\infty)\\cup(-\\infty,2)", True),
    ("\\boxed{(-\\infty, 2) \\cup (3, \\infty)}", "(-\\infty,2)\\cup[3,\\infty)", False),
    ("\\boxed{\\langle 1, 2 \\rangle}", "(1,2)", True),
    ("\\boxed{(0.5, 1)}", "(\\frac{1}{2}, 1)", True),
    # symbolic answers
    ("\\boxed{x+1}", "1+x", True),
    ("\\boxed{x^2-1}", "(x-1)(x+1)", True),
    ("\\boxed{x^2+1}", "(x+1)^2", False),
    ("\\boxed{2x}", "2y", False),
    ("\\boxed{\\frac{x}{2}}", "0.5x", True),
    ("\\boxed{\\pi r^2}", "r^2\\pi", True),
    ("\\boxed{3+4i}", "4i+3", True),
    ("\\boxed{3-4i}", "3+4i", False),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "0.866", False),
    # hard or hostile inputs stay bounded and correct
    ("\\boxed{10^{10^{10}}}", "10^{10^{10}}", True),
    ("\\boxed{10^{10^{10}}}", "10^{10^{11}}", False),
    ("\\boxed{2^{100000}}", "2^{100001}", False),
    ("\\boxed{\\frac{1}{2^{99999}}}", "\\frac{1}{2^{99998}}", False),
    ("\\boxed{" + "9" * 5000 + "}", "9" * 5000, True),
    ("\\boxed{" + "9" * 5000 + "}", "9" * 4999, False),
    ("{" * 5000, "5", False),
    ("\\boxed{" * 2000, "5", False),
    ("\\boxed{1e999999999}", "1e999999998", False),
    ("\\boxed{\\frac{1}{0}}", "\\frac{1}{0}", True),              # identical text
    ("\\boxed{\\frac{1}{0}}", "1", False),
    ("\\boxed{\\sqrt{-4}}", "2", False),
    # words and connectives are not units
    ("\\boxed{x = 2 \\text{ and } y = 3}", "3", False),
    ("\\boxed{x = 2 \\text{ and } y = 3}", "2, 3", True),
    ("\\boxed{x = 2 or x = 3}", "3, 2", True),
    ("The answer is 5 or more", "5", False),
    ("The answer is not 5", "5", False),
    ("\\boxed{1, 2, 3, 4, 5}", "5", False),
    ("\\boxed{x}", "5", False),
    ("\\boxed{\\infty}", "100", False),
    ("\\boxed{4210}", "4210_{5}", False),                     # no base conversion
    ("\\boxed{\\frac{-1}{2}}", "-0.5", True),
    # phrasing after the answer (audit, issue 21): the clause is cut, the numbers in it never count
    ("The answer is 18, which is the total.", "#### 18", True),
    ("The answer is 18, which is the total.", "#### 19", False),
    ("The answer is 180, which is 10 times 18.", "18", False),
    ("The answer is 5, which means she has 18 left.", "18", False),
    ("The answer is $18, so she earns $18 a day.", "18", True),
    ("The answer is $17, so she earns $18 a day.", "18", False),
    ("The answer is 18 hours, because she works 6 hours for 3 days.", "18", True),
    ("The answer is 5 hours, because 18 divided by 3 is 6.", "18", False),
    ("The answer is 18, not 20.", "18", True),
    ("The answer is 20, not 18.", "18", False),
    ("The answer is 18, 19.", "18", False),
    ("The answer is 18 or 19.", "18", False),
    ("The answer is 18, 20 if we count Sunday.", "18", False),
    ("The answer is 5, no wait, it is 6.", "5", False),          # a correction after the comma is not a clause
    ("The answer is 18, but actually it is 20.", "18", False),
    ("The answer is 18, or maybe 20.", "18", False),
    ("The answer is 18, and 20 for the second part.", "18", False),
    ("The answer is 18 (hours).", "18", True),
    ("The answer is 18 (hours).", "19", False),
    ("The answer is -7, which is negative.", "-7", True),
    ("The answer is 7, which is positive.", "-7", False),
    ("The answer is \\(\\sqrt{2}\\), approximately 1.414.", "\\sqrt{2}", True),
    ("The answer is approximately 1.414, i.e. \\(\\sqrt{2}\\).", "\\sqrt{2}", False),
    ("The answers are $x = 2$ and $x = 3$.", "2, 3", True),
    ("The answers are $2$ and $4$.", "2, 3", False),
    ("The answer is 2, which is one of the roots.", "2, 3", False),
    # \( \) and \[ \] are delimiters, not brackets
    ("the answer is \\(18\\)", "18", True),
    ("the answer is \\(18\\)", "19", False),
    ("The answer is \\[18\\]", "18", True),
    ("The answer is \\(\\frac{1}{3}\\), not \\(\\frac{1}{2}\\).", "\\frac12", False),
    ("The answer is \\(-\\frac{5}{2}\\).", "-2.5", True),
    ("The final answer is:\n\\[\n\\frac{7}{2}\n\\]", "3.5", True),
    ("The final answer is:\n\\[\n\\frac{7}{3}\n\\]", "3.5", False),
    ("The answer is:\n$$\n18\n$$\nbut 20 would be wrong.", "18", True),
    ("\\boxed{[2, 5]}", "\\[2, 5\\]", False),                     # \[ \] are not an interval's brackets
    # binomial coefficients
    ("\\boxed{\\binom{5}{2}}", "10", True),
    ("\\boxed{\\binom{5}{3}}", "10", True),
    ("\\boxed{\\binom{5}{1}}", "10", False),
    ("\\boxed{\\binom{6}{2}}", "10", False),
    ("\\boxed{\\dbinom{8}{3}}", "56", True),
    ("\\boxed{\\tbinom{8}{5}}", "\\binom{8}{3}", True),
    ("\\boxed{{5 \\choose 2}}", "10", True),
    ("\\boxed{{5 \\choose 2}}", "5", False),
    ("\\boxed{2\\binom{4}{2}}", "12", True),
    ("\\boxed{\\binom{4}{2}}", "\\binom{4}{2.5}", False),
    # matrices: spacing and p/b brackets do not matter, entries compare by value, "\\\\" is a row break
    ("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", True),
    ("\\boxed{\\begin{pmatrix} 1\\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", True),
    ("\\boxed{\\begin{bmatrix} 1 \\\\ 2 \\\\ \\end{bmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", True),
    ("\\boxed{\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", False),
    ("\\boxed{\\begin{pmatrix} 12 \\end{pmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", False),
    ("\\boxed{\\begin{pmatrix} 1 & 2 \\end{pmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", False),
    ("\\boxed{\\begin{vmatrix} 1 \\\\ 2 \\end{vmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", False),
    ("\\boxed{(1, 2)}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", False),
    ("\\boxed{\\begin{pmatrix}2&-1\\\\0&0.5\\end{pmatrix}}",
     "\\begin{pmatrix} 2 & -1 \\\\ 0 & \\frac{1}{2} \\end{pmatrix}", True),
    ("\\boxed{\\begin{pmatrix}2&0\\\\-1&0.5\\end{pmatrix}}",
     "\\begin{pmatrix} 2 & -1 \\\\ 0 & \\frac{1}{2} \\end{pmatrix}", False),
    # hedges between boxes, base subscripts
    ("It is either \\boxed{20} or \\boxed{18}.", "18", False),
    ("\\boxed{18} or \\boxed{18}", "18", True),
    ("\\boxed{4210_5}", "4210_{5}", True),
    ("\\boxed{4211_5}", "4210_{5}", False),
]


@pytest.mark.parametrize("response,gold,expected", CORRECT, ids=short_id)
def test_is_correct(response, gold, expected):
    assert is_correct(response, gold) is expected
    assert reward(response, gold) == (1.0 if expected else 0.0)


# ----------------------------------------------------------------------------------------------------------------
# Reward hacking (issue 24): the last-number fallback must not reward a number that is only part of the answer.
# Each wrong answer is paired with the right one for the same response, so a verifier that refuses everything fails.

HACKS = [
    # (response, gold it must NOT match, gold it must match)
    ("$\\sqrt{17}$", "17", "\\sqrt{17}"),                        # a number inside an unfinished LaTeX expression
    ("$2^{10}$", "10", "1024"),
    ("$12\\pi$", "12", "12\\pi"),
    ("$\\frac{1+\\sqrt{5}}{2}$", "2", "\\frac{1+\\sqrt5}{2}"),
    ("so x = \\sqrt{17}", "17", None),                            # the same without $...$: no answer at all
    ("so it is 2^{10}", "10", None),
    ("the area is 12\\pi", "12", None),
    ("x = \\frac{1+\\sqrt{5}}{2}", "2", None),
    ("(1,2)", "2", "(1, 2)"),                                     # an item of a tuple
    ("The point is (7, 6).", "6", "(7,6)"),
    ("so x = -\\frac{10}{9}", "\\frac{10}{9}", "-10/9"),          # the sign belongs to the answer
    ("I think it's either 18 or 20.", "20", None),                 # a hedge
    ("It is $18$ or $20$", "20", None),
    ("Maybe 18, or maybe 20", "20", None),
    ("The roots are 2 and 3", "3", None),
    ("so she pays 3 * 6", "6", None),                              # an operand
    ("Answer $ \n 9 \n $", "9", None),                             # inline math broken over lines (Math-Verify)
]


@pytest.mark.parametrize("response,wrong,right", HACKS, ids=short_id)
def test_reward_hacks_rejected(response, wrong, right):
    assert not is_correct(response, wrong)
    if right is not None:
        assert is_correct(response, right)


# Answers the issue found missed (issue 24), each with a wrong gold for the same response.
MISSES = [
    ("so $\\frac{14}{3}$", "\\frac{14}{3}", True),                      # the last $...$ when there is no box
    ("so $\\frac{14}{3}$", "\\frac{14}{5}", False),
    ("The identity matrix is $ \\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix} $.",
     "\\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix}", True),
    ("Thus \\(x = 7\\). <|im_start|>user", "7", True),
    ("It costs $5 and he pays $6", "6", True),                         # money is not a math block
    ("Final Answer: The largest $n$ is 34.", "34", True),
    ("Final Answer: The largest $n$ is 34.", "3", False),
    ("Final Answer: The volume of $ABCDEFGH$ is 120. I hope it is correct.", "120", True),
    ("Final Answer: Jane started growing Sphere 3 hours ago. I hope it is correct.", "3", True),
    ("Final Answer: It is not 5.", "5", False),
    ("\\boxed{200} So she has $10,455. Final Answer: The final answer is $10,455$.", "10455", True),  # later final
    ("\\boxed{200} So she has $10,455. Final Answer: The final answer is $10,455$.", "200", False),
    ("Therefore $x \\geq 5$ is the solution.", "x \\ge 5", True),       # relations, however spelled
    ("Therefore $x \\geq 5$ is the solution.", "x \\le 5", False),
    ("We find that $x \\lt 3$.", "x < 3", True),
    ("Thus $x <= 2$ is our answer.", "x \\leq 2", True),
    ("The solution is $x != 5$", "x \\neq 5", True),
    ("$5 \\geq x$", "x \\le 5", True),
    ("$5 \\geq x$", "x \\ge 5", False),
    ("$-x > -1$", "x < 1", False),                                     # no algebra on relations
    ("The answer is 42 (since 6 x 7 = 42).", "42", True),
    ("The answer is 42 (since 6 x 7 = 42).", "7", False),
    (".4", "0.4", True),
    ("x is .4", "4", False),
    ("She needs 2 1/2 cups", "5/2", True),                             # a mixed number
    ("She needs 2 1/2 cups", "1/2", False),
]


@pytest.mark.parametrize("response,gold,expected", MISSES, ids=short_id)
def test_issue_misses(response, gold, expected):
    assert is_correct(response, gold) is expected


# Forms Math-Verify's own tests use (tests/math_verify_cases.jsonl), one rule each, with the wrong answer beside.
FORMS = [
    ("1000,99", "1000.99", True),                                      # a decimal comma against a decimal
    ("\\boxed{1,22}", "1.22", True),
    ("\\boxed{1,22}", "122", False),
    ("\\boxed{2,125}", "2.125", False),                                # before three digits it separates thousands
    ("\\boxed{0,111}", "0.111", True),
    ("\\boxed{11,\\! 111,\\! 100}", "11111100", True),
    ("\\boxed{14 {, }916}", "14916", True),
    ("\\boxed{1 000}", "1000", True),
    ("\\boxed{-12;-11;-10}", "\\{-10, -11, -12\\}", True),
    ("\\boxed{{1,3}}", "\\{3, 1\\}", True),
    ("\\boxed{{1,3}}", "\\{3, 2\\}", False),
    ("\\boxed{(11,7)or(7,11)}", "(7,11), (11,7)", True),
    ("\\boxed{19, 46, \\text{ and } 82}", "19, 46, and 82", True),
    ("\\boxed{19, 46, \\text{ and } 82}", "21, 46, and 82", False),
    ("\\boxed{x = 5+5+1 = 11}", "11", True),                            # the last right-hand side
    ("\\boxed{x = 5+5+1 = 11}", "5", False),
    ("\\boxed{x = \\frac13 \\approx 0.33}", "1/3", True),
    ("\\boxed{x = \\frac13 \\approx 0.33}", "0.33", False),
    ("\\boxed{x \\approx 11}", "11", True),
    ("\\boxed{|AB| = 1}", "1", True),
    ("\\boxed{A:B = 7:32}", "7:32", True),
    ("\\boxed{2x + z = 1}", "1", False),                              # an equation, not a named value
    ("\\boxed{7 = 11a + c}", "11a+c", False),
    ("\\boxed{1} papers and \\boxed{2} bins", "1, 2", True),
    ("\\boxed{1} no no no no no \\boxed{2}", "1, 2", False),
    ("\\boxed{1}\\boxed{2}", "2", False),                              # adjacent boxes are a list
    ("\\boxed{\\\\left( 3, \\\\frac{\\\\pi}{2} \\\\right)}", "(3, \\frac{\\pi}{2})", True),  # escaped backslashes
    ("\\boxed{\\left[\\begin{array}{cc}1 & 2 \\\\ 3 & 4\\end{array}\\right]}",
     "\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}", True),
    ("\\boxed{\\sec^2 y}", "\\tan^2 y + 1", True),
    ("\\boxed{\\cot 2}", "\\tan^{-1} 2", False),                        # \tan^{-1} is arctan, not 1/tan
    ("Final Answer: The final answer is \\\"$18$\\\".", "18", True),
]


@pytest.mark.parametrize("response,gold,expected", FORMS, ids=short_id)
def test_math_verify_forms(response, gold, expected):
    assert is_correct(response, gold) is expected


MATH_GOLDS = [
    r"\left( 3, \frac{\pi}{2} \right)", "p - q", r"\frac{14}{3}", r"\text{Evelyn}", r"\frac{243}{625}",
    r"-\frac{1}{3}", r"\pi", r"3\sqrt{13}", r"\frac{\sqrt{3}}{2}", r"(-\infty,-2)\cup(-2,\infty)", "[-2,7]",
    r"\text{(C)}", "x^2+7x+10", "6 - 5i", r"\$32,348", r"10\%", r"1,\!000", r"\frac{1}{2}, -\frac{1}{3}",
    r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"y = -\frac{1}{2}x + 4", r"3 \text{ inches}", "4210_{5}",
    r"90^\circ", r"\dfrac{9}{2}", r"\{1, 3\}", r"\infty", r"\tan^{-1} 2", r"x \in [-2, 3]", r"80,\!000",
    r"1 \pm \sqrt{19}", "-4,-3,-2,-1,0,1,2,3,4", r"\left[ \frac{1}{2}, 1 \right)", r"\mathbf{a}",
    r"(0,9) \cup (36,\infty)", r"1 \text{ and } 2", r"\frac{3}{4} \text{ cups}", "101_2",
]


@pytest.mark.parametrize("gold", MATH_GOLDS, ids=short_id)
def test_gold_matches_itself(gold):
    # Every real-looking gold answer, boxed or after ####, must be accepted against itself.
    assert is_correct(f"so the answer is $\\boxed{{{gold}}}$.", f"Solution... $\\boxed{{{gold}}}$")
    assert is_correct(f"#### {gold}", gold)


def test_table_size():
    assert len(EXTRACT) + len(GOLD) + len(CORRECT) >= 150


# ----------------------------------------------------------------------------------------------------------------
# Normalization details

def test_units_never_cut_inside_a_command():
    # "ft" and "in" are units; \left, \infty, \in must survive as commands (or be removed whole).
    assert "\\le(" not in latex_equiv.normalize(r"\left(1, 2\right)")
    assert latex_equiv.normalize(r"\left(1, 2\right)") == "(1, 2)"
    assert latex_equiv.normalize(r"(-\infty, 2]") == r"(-\infty, 2]"
    assert latex_equiv.normalize(r"5 \text{ ft}") == "5"
    assert latex_equiv.normalize("x \\leftarrow 5 ft") == "x \\leftarrow 5"


@pytest.mark.parametrize("raw,expected", [
    ("$\\dfrac12$", "\\frac{1}{2}"),
    ("\\sqrt3", "\\sqrt{3}"),
    ("1{,}234", "1234"),
    ("- 3", "-3"),
    ("\u22123", "-3"),
    ("72.", "72"),
    ("\\$1,000", "1000"),
    ("20 \\%", "20%"),
    ("x = 5", "5"),
])
def test_normalize(raw, expected):
    assert latex_equiv.normalize(raw) == expected


def test_format_reward():
    assert format_reward("\\boxed{3}") == 1.0
    assert format_reward("#### 3") == 1.0
    assert format_reward("The answer is 3") == 1.0
    assert format_reward("3") == 0.0                 # only the last-number fallback
    assert format_reward("\\boxed{3") == 0.0         # truncated
    assert format_reward("") == 0.0
    assert format_reward(None) == 0.0
    assert format_reward("\\boxed{3}", weight=0.1) == pytest.approx(0.1)


@pytest.mark.parametrize("bad", [None, 123, 4.5, b"bytes", ["list"], object(), "\x00\x01", "\ud800"])
def test_never_raises(bad):
    assert extract_answer(bad) is None or isinstance(extract_answer(bad), str)
    assert isinstance(extract_gold(bad), str)
    assert is_correct(bad, bad) in (True, False)
    assert is_correct("5", bad) in (True, False)
    assert reward(bad, "5") in (0.0, 1.0)
    assert format_reward(bad) in (0.0, 1.0)


def test_non_string_gold():
    assert is_correct("#### 72", 72)
    assert is_correct("#### 0.5", 0.5)
    assert not is_correct("#### 72", 73)


def test_plain_number_reward_never_loads_latex_equiv():
    # a GSM8K reward reads verify.py alone; latex_equiv.py is imported on the first answer that is not a plain number
    code = ("import sys, verify\n"
            "assert verify.reward('so she has #### $1,234.50', '#### 1234.5') == 1.0\n"
            "assert verify.reward('The answer is 18.', '#### 17') == 0.0\n"
            "assert 'latex_equiv' not in sys.modules\n"
            "assert verify.reward('The answer is \\\\frac{1}{2}.', '#### 0.5') == 1.0\n"
            "assert 'latex_equiv' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], cwd=Path(verify.__file__).parent, check=True)


def test_thread_safe():
    cases = CORRECT * 3
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda c: is_correct(c[0], c[1]), cases))
    assert results == [c[2] for c in cases]


def test_time_per_call_on_4000_char_response():
    response = long_cot("Therefore the total is $\\boxed{\\frac{2125}{3}}$.")
    assert 4000 <= len(response) <= 4200
    times = []
    for _ in range(100):
        t0 = time.perf_counter()
        assert is_correct(response, "#### 708.333333333")
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    print(f"\nis_correct on a {len(response)}-char response: median {median * 1e6:.0f} us over 100 calls")
    assert median < 0.05


# ----------------------------------------------------------------------------------------------------------------
# The audit set (bench/verify_audit.jsonl, built and described by bench/verify_audit.py): responses in the phrasing
# of common math models, hand-written cases and real SmolLM2 responses, each with a hand label.

AUDIT_FILE = Path(__file__).resolve().parent.parent / "bench" / "verify_audit.jsonl"
AUDIT_MAX_FN = 2  # measured: "18 hours, because 3 days of 6 hours each." (no answer phrase, last number 6) and
#                   "The answer is 18, and she has 2 left over." (a clause after ", and" stays part of the answer)


def audit_rows():
    rows = [json.loads(line) for line in AUDIT_FILE.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["label"] is not None]


def test_audit_against_hand_labels():
    rows = audit_rows()
    assert len(rows) >= 300
    got = [is_correct(r["response"], r["gold"]) for r in rows]
    false_pos = [r for r, g in zip(rows, got) if g and not r["label"]]
    false_neg = [r for r, g in zip(rows, got) if r["label"] and not g]
    assert not false_pos, [(r["note"], r["response"][-80:]) for r in false_pos]  # a wrong reward is reward hacking
    assert len(false_neg) <= AUDIT_MAX_FN, [(r["note"], r["response"][-80:]) for r in false_neg]


def test_audit_against_math_verify():
    # Math-Verify (test-only, sympy-based) as an independent grader on the same rows: verify.py must make no more
    # false positives and no more false negatives than it, and agree with it on most rows (measured: 0.941 on 1284
    # rows; they differ mostly where Math-Verify accepts a hedge "18 or 9" or a cut-off "\boxed{18").
    pytest.importorskip("math_verify")
    spec = importlib.util.spec_from_file_location("verify_audit", AUDIT_FILE.with_suffix(".py"))
    verify_audit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(verify_audit)
    grade = verify_audit.math_verify_grader()
    rows = audit_rows()
    ours = [is_correct(r["response"], r["gold"]) for r in rows]
    theirs = [grade(r["response"], r["gold"]) for r in rows]
    labels = [r["label"] for r in rows]
    for name, pred in (("verify.py", ours), ("math-verify", theirs)):
        fp = sum(p and not t for p, t in zip(pred, labels))
        fn = sum(t and not p for p, t in zip(pred, labels))
        print(f"\n{name}: {fp} false positives, {fn} false negatives on {len(rows)} rows")
    assert sum(p and not t for p, t in zip(ours, labels)) <= sum(p and not t for p, t in zip(theirs, labels))
    assert sum(t and not p for p, t in zip(ours, labels)) <= sum(t and not p for p, t in zip(theirs, labels))
    assert sum(a == b for a, b in zip(ours, theirs)) / len(rows) >= 0.9


# ----------------------------------------------------------------------------------------------------------------
# Math-Verify's own test suite as an external reference: tests/math_verify_cases.jsonl holds its 276 labelled cases
# (huggingface/Math-Verify tests/*.py, Apache-2.0; the file's header names the commit, the licence and how they were
# read). Its labels are the truth here, written by other people for their own grader.
#
# In scope is what a GSM8K or MATH reward must grade: plain answers; extraction from boxed, unboxed, sentenced and
# signed responses; number formats (thousands separators, decimal commas, .5, percent, units); precision at the
# default rounding; gold forms ($...$, \boxed, "x = ", several boxes, a whole solution); and relations, sets,
# tuples, intervals and matrices as long as they compare item by item. Out of scope, marked in the file with the
# reason (24 cases): relation algebra (-x > -1 vs x < 1, rescaled or solved equations), an inequality against an
# interval (-2 <= x <= 7 vs [-2, 7]), matrix arithmetic, summation notation, cases run with a non-default Math-Verify
# option (strict=False, rounding to 2 or 4 decimals, where 0.33 counts as 1/3), a multiple-choice letter without
# the list of choices, solution sets written as assignments against tuples, and one label that contradicts
# arithmetic (1 - 1/e labelled equal to 1 + 1/e).

MATH_VERIFY_FILE = Path(__file__).resolve().parent / "math_verify_cases.jsonl"
MATH_VERIFY_MIN_AGREEMENT = 0.9


def test_math_verify_suite():
    lines = MATH_VERIFY_FILE.read_text(encoding="utf-8").splitlines()
    cases = [json.loads(line) for line in lines if line.strip() and not line.startswith("#")]
    assert len(cases) == 276 and sum(c["scope"] == "in" for c in cases) == 252
    got = [is_correct(c["pred"], c["gold"]) for c in cases]
    in_scope = [(c, g) for c, g in zip(cases, got) if c["scope"] == "in"]
    agree_all = sum(g == c["expected"] for c, g in zip(cases, got))
    agree_in = sum(g == c["expected"] for c, g in in_scope)
    print(f"\nMath-Verify suite: agrees on {agree_all}/{len(cases)}, in scope {agree_in}/{len(in_scope)}")
    false_pos = [(c["id"], c["source"], c["pred"][-80:], c["gold"][-80:]) for c, g in zip(cases, got)
                 if g and not c["expected"]]
    assert not false_pos  # in scope or not: a reward Math-Verify's authors call wrong is reward hacking
    misses = [(c["id"], c["source"], c["pred"][-80:], c["gold"][-80:]) for c, g in in_scope if g != c["expected"]]
    assert agree_in / len(in_scope) >= MATH_VERIFY_MIN_AGREEMENT, misses
