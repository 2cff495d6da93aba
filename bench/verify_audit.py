"""
Audit of verify.py against hand labels and against Math-Verify, case by case.

    python bench/verify_audit.py                      # report on bench/verify_audit.jsonl
    python bench/verify_audit.py --show=disagree      # also print every case where someone is wrong
    python bench/verify_audit.py --build              # rewrite the synthetic rows from the tables below
    python bench/verify_audit.py --import_real="out/gsm8k_eval*/*.jsonl" --n_real=250   # add real responses
    python bench/verify_audit.py --suite --show=disagree   # Math-Verify's own test cases (tests/math_verify_cases.jsonl)

bench/verify_audit.jsonl holds one case per line: {response, gold, label, source, note}. `label` is the truth,
assigned by hand: True if the response's final answer is the gold answer, False otherwise (a wrong final answer
that mentions the right number earlier, a hedge between two answers, a cut-off box are all False).

Two kinds of rows:
  - synthetic (source "gsm8k-style:<style>" / "math-style:<style>"): the phrasing styles of common math models
    (Qwen2.5-Math \\boxed, DeepSeek-R1 "**Final Answer**\\n\\[\\boxed{}\\]", Llama "The final answer is: $\\boxed{}$",
    Minerva "Final Answer: The final answer is $x$. I hope it is correct.", GSM8K "#### x", plain language with a
    clause after the answer, \\( \\) and \\[ \\] delimiters, units, money, thousands separators, LaTeX forms). They are
    built by --build from the hand-written tables below: each style, each answer form, carries the label I gave it,
    so the label never comes from a grader.
  - real (source "smollm2-gsm8k"): SmolLM2-135M-Instruct's own GSM8K test responses, imported by --import_real.
    Where verify.py and Math-Verify agree their verdict is taken as the label; every disagreement is marked
    "label": null on import, read by hand and labelled in the file (the note says why). The 200 in the file (the
    full-attention run of runs/gsm8k_smollm2_eval.sh, greedy, 320 tokens) had no disagreement; the 27 that are
    labelled True or mention the gold number anywhere were read by hand as well ("read by hand" in the note).

--suite reports instead on the 276 labelled cases of Math-Verify's own test suite (tests/math_verify_cases.jsonl,
described in its header; its labels are the truth there): agreement on all of them and on those in scope, and false
positives (verify.py says correct where the label says wrong), with the in-scope disagreements under --show.

Math-Verify (pip install math-verify; test-only, it needs sympy) sees the gold as a grader would give it: a GSM8K
gold is the text after "####" with thousands commas removed, a MATH gold is wrapped in $...$ (or passed as is if it
holds a \\boxed), and it is called as verify(parse(gold), parse(response)) with its default extraction.
"""
import argparse
import glob
import json
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import verify  # noqa: E402

AUDIT_FILE = os.path.join(ROOT, "bench", "verify_audit.jsonl")
SUITE_FILE = os.path.join(ROOT, "tests", "math_verify_cases.jsonl")


# ----------------------------------------------------------------------------------------------------------------
# GSM8K-style problems: (solution sentences, gsm8k-format solution, gold, unit, is_money, a wrong final answer)
# The wrong answer is a number a model might plausibly end on (an intermediate, an off-by-one step).

GSM = [
    ("Janet's ducks lay 16 eggs. She eats 3 and bakes with 4, so she sells 16 - 3 - 4 = 9 eggs. At $2 each she "
     "makes 9 * 2 = 18 dollars.", "She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $<<9*2=18>>18.",
     18, "dollars", True, 9),
    ("A robe takes 2 bolts of blue fiber and half that much white fiber, which is 2 / 2 = 1 bolt. In total it takes "
     "2 + 1 = 3 bolts.", "It takes 2/2=<<2/2=1>>1 bolt of white fiber.\nSo the total is 2+1=<<2+1=3>>3 bolts.",
     3, "bolts", False, 1),
    ("Josh buys a house for $80,000 and puts in $50,000 of repairs, so he spends 80,000 + 50,000 = 130,000. The "
     "value rises by 150%, so it is worth 80,000 * 2.5 = 200,000. His profit is 200,000 - 130,000 = 70,000.",
     "The cost is 80000+50000=$<<80000+50000=130000>>130,000.\nThe new value is 80000*2.5=<<80000*2.5=200000>>200,000."
     "\nSo the profit is 200000-130000=$<<200000-130000=70000>>70,000.", 70000, "dollars", True, 130000),
    ("James sprints 3 sets of 60 meters 3 times a week. Each session is 3 * 60 = 180 meters, so he runs "
     "180 * 3 = 540 meters a week.", "He sprints 3*60=<<3*60=180>>180 meters per session.\n"
     "So he runs 180*3=<<180*3=540>>540 meters a week.", 540, "meters", False, 180),
    ("Wendi gives each of her 20 chickens 3 cups of feed a day, 20 * 3 = 60 cups. She gave 15 + 25 = 40 cups "
     "already, so the last meal needs 60 - 40 = 20 cups.", "Total feed is 20*3=<<20*3=60>>60 cups.\nShe gave "
     "15+25=<<15+25=40>>40 cups.\nSo the final meal is 60-40=<<60-40=20>>20 cups.", 20, "cups", False, 40),
    ("Kylar buys 16 glasses. Every second glass costs 60% of $5, which is $3. So 8 glasses cost 8 * 5 = 40 and 8 "
     "cost 8 * 3 = 24, for 40 + 24 = 64 dollars.", "Half price is 5*0.6=<<5*0.6=3>>3.\n8*5=<<8*5=40>>40 and "
     "8*3=<<8*3=24>>24.\nTotal 40+24=<<40+24=64>>64.", 64, "dollars", True, 40),
    ("Toulouse has twice as many sheep as Charleston, and Charleston has 4 times as many as Seattle's 20. Charleston "
     "has 4 * 20 = 80, Toulouse 2 * 80 = 160, so together 20 + 80 + 160 = 260 sheep.", "Charleston has "
     "4*20=<<4*20=80>>80.\nToulouse has 2*80=<<2*80=160>>160.\nTogether 20+80+160=<<20+80+160=260>>260.", 260,
     "sheep", False, 160),
    ("Carla downloads 200 GB at 2 GB a minute. 40% in, a restart costs 20 minutes. 40% of 200 is 80 GB, which takes "
     "80 / 2 = 40 minutes; then she restarts and downloads all 200 GB in 200 / 2 = 100 minutes. The total is "
     "40 + 20 + 100 = 160 minutes.", "40% of 200 is 200*0.4=<<200*0.4=80>>80 GB, taking 80/2=<<80/2=40>>40 min.\n"
     "The full download takes 200/2=<<200/2=100>>100 min.\nTotal 40+20+100=<<40+20+100=160>>160.", 160, "minutes",
     False, 100),
    ("John drives 3 hours at 60 mph, which is 180 miles, then turns back. He drives 2 hours at 30 mph and 0.5 hours "
     "at 80 mph, covering 60 + 40 = 100 miles, so he is 180 - 100 = 80 miles from home.", "He went "
     "3*60=<<3*60=180>>180 miles.\nOn the way back 2*30+0.5*80=<<2*30+0.5*80=100>>100 miles.\nSo "
     "180-100=<<180-100=80>>80 miles.", 80, "miles", False, 100),
    ("Eliza earns $10 an hour for 40 hours, 10 * 40 = 400, and 1.2 * 10 = 12 an hour for 5 hours of overtime, "
     "12 * 5 = 60. She earns 400 + 60 = 460 dollars.", "Regular pay 10*40=<<10*40=400>>400.\nOvertime "
     "10*1.2*5=<<10*1.2*5=60>>60.\nTotal 400+60=<<400+60=460>>460.", 460, "dollars", True, 400),
    ("A program had 60 downloads in the first month, three times as many in the second, 60 * 3 = 180, and 30% fewer "
     "in the third, 180 * 0.7 = 126. The total is 60 + 180 + 126 = 366 downloads.", "Second month "
     "60*3=<<60*3=180>>180.\nThird month 180*0.7=<<180*0.7=126>>126.\nTotal 60+180+126=<<60+180+126=366>>366.",
     366, "downloads", False, 126),
    ("Toula buys 3 dozen donuts at $68 a dozen, 3 * 68 = 204, 2 dozen mini cupcakes at $80, 2 * 80 = 160, and 6 "
     "dozen cheesecakes at $55, 6 * 55 = 330. The total is 204 + 160 + 330 = 694 dollars.", "Donuts "
     "3*68=<<3*68=204>>204.\nCupcakes 2*80=<<2*80=160>>160.\nCheesecakes 6*55=<<6*55=330>>330.\nTotal "
     "204+160+330=<<204+160+330=694>>694.", 694, "dollars", True, 330),
    ("Carlos plants a lemon tree for $90 and spends $3 a year. It gives 7 lemons a year at $1.5 each, 10.5 a year, "
     "so he nets 10.5 - 3 = 7.5 a year. He needs 90 / 7.5 = 12 years.", "Each year he earns "
     "7*1.5=<<7*1.5=10.5>>10.5.\nNet 10.5-3=<<10.5-3=7.5>>7.5.\nYears 90/7.5=<<90/7.5=12>>12.", 12, "years", False,
     13),
    ("Melanie sells a third of her vacuum cleaners, then 2 more, then half of the rest, and has 5 left. Before the "
     "last sale she had 5 * 2 = 10, before the 2 she had 12, and 12 is two thirds, so she started with "
     "12 * 3 / 2 = 18.", "Before the half: 5*2=<<5*2=10>>10.\nBefore the 2: 10+2=<<10+2=12>>12.\nStart: "
     "12*3/2=<<12*3/2=18>>18.", 18, "vacuum cleaners", False, 12),
    ("In a class of 20, 20% enroll in contemporary dance, 20 * 0.2 = 4, leaving 16. 25% of those, 16 * 0.25 = 4, "
     "enroll in jazz, leaving 12 in hip-hop. That is 12 / 20 = 60% of the class.", "Contemporary "
     "20*0.2=<<20*0.2=4>>4.\nJazz 16*0.25=<<16*0.25=4>>4.\nHip-hop 20-4-4=<<20-4-4=12>>12, which is "
     "12/20*100=<<12/20*100=60>>60%.", 60, "percent", False, 12),
    ("A merchant picks jewelry worth $5,000 rising 2.5% or electronics worth $8,000 rising 1.2%. The jewelry gains "
     "5,000 * 0.025 = 125 and the electronics 8,000 * 0.012 = 96, so the best profit is 125 dollars.",
     "Jewelry 5000*0.025=<<5000*0.025=125>>125.\nElectronics 8000*0.012=<<8000*0.012=96>>96.\nThe better is 125.",
     125, "dollars", True, 96),
    ("Two trains each travel 80 miles west and then 150 miles north, so each covers 80 + 150 = 230 miles over the "
     "two days.", "Each covers 80+150=<<80+150=230>>230 miles.", 230, "miles", False, 150),
    ("Jill earns $20 an hour teaching for 50 weeks of 35 hours, 20 * 35 * 50 = 35,000, and $30 an hour coaching "
     "for 15 hours a week, 30 * 15 * 50 = 22,500. Her annual salary is 35,000 + 22,500 = 57,500 dollars.",
     "Teaching 20*35*50=<<20*35*50=35000>>35,000.\nCoaching 30*15*50=<<30*15*50=22500>>22,500.\nTotal "
     "35000+22500=<<35000+22500=57500>>57,500.", 57500, "dollars", True, 35000),
    ("Claire makes a 3 egg omelet every morning. In 4 weeks there are 4 * 7 = 28 days, so she eats 28 * 3 = 84 "
     "eggs, which is 84 / 12 = 7 dozen.", "Days 4*7=<<4*7=28>>28.\nEggs 28*3=<<28*3=84>>84.\nDozens "
     "84/12=<<84/12=7>>7.", 7, "dozen", False, 84),
    ("Marissa hikes 12 miles. The first 4 take 1 hour and the next 2 take another hour. To average 4 mph she has "
     "12 / 4 = 3 hours, so 1 hour is left for the remaining 12 - 6 = 6 miles: 6 miles per hour.", "Total time "
     "12/4=<<12/4=3>>3.\nRemaining distance 12-4-2=<<12-4-2=6>>6 in 3-2=<<3-2=1>>1 hour.\nSpeed "
     "6/1=<<6/1=6>>6.", 6, "mph", False, 3),
    ("I have 10 liters of orange drink that is two-thirds water and add 15 liters of pineapple drink that is "
     "three-fifths water. Water is 10 * 2/3 + 15 * 3/5, and after spilling one liter of orange drink there is "
     "9 * 2/3 + 15 * 3/5 = 6 + 9 = 15 liters of water.", "Orange water 9*2/3=<<9*2/3=6>>6.\nPineapple water "
     "15*3/5=<<15*3/5=9>>9.\nTotal 6+9=<<6+9=15>>15.", 15, "liters", False, 24),
    ("Raymond and Samantha are cousins; Raymond was born 6 years before Samantha. Raymond had a son at 23, and "
     "Samantha is now 31, so Raymond is 37 and his son was born 37 - 23 = 14 years ago.", "Raymond is "
     "31+6=<<31+6=37>>37.\nHis son was born 37-23=<<37-23=14>>14 years ago.", 14, "years", False, 37),
    ("Billy sells DVDs: 3 customers buy one each, 2 buy two each, 2 * 2 = 4, and 3 buy none. He sells "
     "3 + 4 = 7 DVDs.", "First 3*1=<<3*1=3>>3.\nNext 2*2=<<2*2=4>>4.\nTotal 3+4=<<3+4=7>>7.", 7, "DVDs", False, 4),
    ("A candle melts 2 centimeters every hour. From 1:00 PM to 5:00 PM is 4 hours, so it gets 4 * 2 = 8 "
     "centimeters shorter.", "Hours 5-1=<<5-1=4>>4.\nShorter by 4*2=<<4*2=8>>8 cm.", 8, "centimeters", False, 4),
    ("Kyle bought last year's best-selling book for $19.50, which is 25% off the original price. The original "
     "price is 19.50 / 0.75 = 26 dollars.", "Original 19.50/0.75=<<19.50/0.75=26>>26.", 26, "dollars", True,
     24.375),
    ("Marie ordered a chicken meal for $12, 5 packs of milk at $3 each, 15, 4 apples at $1.50, 6, and some pizza "
     "boxes at $8.50 each for a total of $50. The pizza costs 50 - 12 - 15 - 6 = 17, so she ordered 17 / 8.5 = 2 "
     "boxes.", "Milk 5*3=<<5*3=15>>15.\nApples 4*1.5=<<4*1.5=6>>6.\nPizza 50-12-15-6=<<50-12-15-6=17>>17.\nBoxes "
     "17/8.5=<<17/8.5=2>>2.", 2, "boxes", False, 17),
    ("Mishka bought 3 pairs of shorts, 3 pairs of pants and 3 pairs of shoes at $16.50, $22.50 and $42 each: "
     "3 * 16.5 = 49.5, 3 * 22.5 = 67.5 and 3 * 42 = 126, so she spent 49.5 + 67.5 + 126 = 243 dollars.", "Shorts "
     "3*16.5=<<3*16.5=49.5>>49.5.\nPants 3*22.5=<<3*22.5=67.5>>67.5.\nShoes 3*42=<<3*42=126>>126.\nTotal "
     "49.5+67.5+126=<<49.5+67.5+126=243>>243.", 243, "dollars", True, 126),
    ("Cynthia eats one serving of ice cream a night. A carton has 15 servings and costs $4, so 60 days take "
     "60 / 15 = 4 cartons, 4 * 4 = 16 dollars.", "Cartons 60/15=<<60/15=4>>4.\nCost 4*4=<<4*4=16>>16.", 16,
     "dollars", True, 4),
    ("Henry made two stops on a 60-mile bike trip: the first after 20 miles and the second 15 miles before the "
     "end. Between them he traveled 60 - 20 - 15 = 25 miles.", "Between stops 60-20-15=<<60-20-15=25>>25.", 25,
     "miles", False, 40),
    ("Gloria's boots cost $1,250 and she has two heel options, one pair at $33 and one at twice that, $66. "
     "Together the heels are 33 + 66 = 99, so the boots cost 1,250 - 99 = 1,151 dollars more... no, the heels are "
     "$5 cheaper than the boots, so the boots cost 99 + 5 = 104 dollars.", "Second pair 33*2=<<33*2=66>>66.\n"
     "Heels 33+66=<<33+66=99>>99.\nBoots 99+5=<<99+5=104>>104.", 104, "dollars", True, 99),
]


def _fmt(x, commas=False):
    if isinstance(x, float) and x != int(x):
        return f"{x:,}" if commas else repr(x)
    return f"{int(x):,}" if commas else str(int(x))


def _gsm_rows():
    """Correct answers in each style (label True), then wrong finals and hedges (label False)."""
    rows = []
    for i, (sol, gsm_sol, gold, unit, money, wrong) in enumerate(GSM):
        G, W, Gc = _fmt(gold), _fmt(wrong), _fmt(gold, commas=True)
        d = "$" if money else ""
        gold_text = f"{gsm_sol}\n#### {gold}"
        right = {
            "qwen-boxed": f"{sol}\n\nTherefore, the final answer is $\\boxed{{{G}}}$.",
            "r1": (f"<think>\nOkay, let's see. {sol} Wait, let me double-check that. Yes, that is right.\n</think>"
                   f"\n\n{sol}\n\n**Final Answer**\n\\[\n\\boxed{{{G}}}\n\\]"),
            "llama": f"## Step 1: Set up\n{sol}\n\n## Step 2: Conclude\nThe final answer is: $\\boxed{{{G}}}$",
            "gsm8k-hashes": f"{gsm_sol}\n#### {G}",
            "minerva": f"{sol}\nFinal Answer: The final answer is ${G}$. I hope it is correct.",
            "phrase-which": f"{sol} The answer is {G}, which is the total.",
            "phrase-dollar-so": f"{sol} So the answer is {d}{G}, so that is what we get.",
            "phrase-unit-because": f"{sol} The answer is {G} {unit}, because that is what is left over.",
            "paren-delims": f"{sol} So the answer is \\({G}\\).",
            "display-delims": f"{sol}\n\nThe final answer is:\n\\[\n{G}\n\\]",
            "bold-answer": f"{sol}\n\n**Answer:** " + (f"${Gc}" if money else f"{Gc} {unit}"),
            "thousands": f"{sol} The answer is {d}{Gc}.",
            "last-number": f"{sol} Therefore, the result is " + (f"${Gc}" if money else f"{Gc} {unit}") + " in all.",
            "boxed-text-unit": f"{sol} The answer is $\\boxed{{{G} \\text{{ {unit}}}}}$.",
            "answer-colon": f"{sol}\n\nAnswer: {d}{G}",
            "metamath": f"{sol}\nThe answer is: {G}",
            "boxed-decimal": f"{sol}\n\nSo the final answer is \\(\\boxed{{{G}.00}}\\).",
        }
        if money:
            right["money-cents"] = f"{sol} The answer is ${Gc}.00."
            right["boxed-dollar"] = f"{sol}\n\n\\[\n\\boxed{{\\${Gc}}}\n\\]"
        if unit == "percent":
            right["percent"] = f"{sol} So the answer is {G}\\%."
        wrong_styles = {
            "wrong-final": f"{sol} Hmm, let me redo this. Actually the answer is {W}.",
            "wrong-boxed": f"{sol}\n\nWait, I think I double counted.\n\n**Final Answer**\n\\[\n\\boxed{{{W}}}\n\\]",
            "wrong-hashes": f"{gsm_sol}\n#### {W}",
            "hedge-or": f"{sol} The answer is {G} or {W}.",
            "hedge-boxes": f"{sol} So it is either $\\boxed{{{G}}}$ or $\\boxed{{{W}}}$.",
            "hedge-boxes-right-last": f"{sol} So it is either $\\boxed{{{W}}}$ or $\\boxed{{{G}}}$.",
            "hedge-or-right-last": f"{sol} The answer is {W} or {G}.",
            "hedge-list": f"{sol}\n\n\\boxed{{{G}}}, \\boxed{{{W}}}",
            "truncated-box": f"{sol} The final answer is $\\boxed{{{G}",
            "corrected-away": f"{sol} The answer is {G}. Wait, no, that is wrong: the answer is {W}.",
        }
        for style, resp in right.items():
            rows.append(dict(response=resp, gold=gold_text, label=True, source=f"gsm8k-style:{style}",
                             note=f"problem {i}: right answer {G}"))
        for style, resp in wrong_styles.items():
            rows.append(dict(response=resp, gold=gold_text, label=False, source=f"gsm8k-style:{style}",
                             note=f"problem {i}: final answer {W}, gold {G}"))
    return rows


# ----------------------------------------------------------------------------------------------------------------
# MATH-style answers: gold (as a MATH solution boxes it), then answer forms with the label I give each.
# Ambiguous forms (a decimal approximation of a radical, 0.2 for "what percent", a tuple for a column vector) are
# left out on purpose: the audit is about cases whose truth is not in doubt.

T, F = True, False
MATH = [
    (r"\frac{1}{2}", [(r"\frac12", T), ("0.5", T), (r"\dfrac{1}{2}", T), ("1/2", T), (r"\frac{2}{4}", T),
                      (r"\frac{1}{3}", F), ("0.05", F), ("2", F)]),
    ("10", [(r"\binom{5}{2}", T), (r"\dbinom{5}{2}", T), (r"\binom{5}{3}", T), (r"\binom{5}{1}", F),
            (r"\binom{6}{2}", F), ("10", T), ("100", F)]),
    ("56", [(r"\binom{8}{3}", T), (r"\binom{8}{5}", T), (r"\tbinom{8}{3}", T), (r"\binom{8}{2}", F)]),
    (r"3\sqrt{13}", [(r"\sqrt{117}", T), (r"3 \sqrt{13}", T), (r"\sqrt{13} \cdot 3", T), (r"\sqrt{13}", F),
                     (r"13\sqrt{3}", F)]),
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", [
        (r"\begin{pmatrix}1\\2\end{pmatrix}", T), (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", T),
        (r"\begin{pmatrix} 1\\ 2 \end{pmatrix}", T), (r"\begin{bmatrix} 1 \\ 2 \end{bmatrix}", T),
        (r"\begin{pmatrix} 2 \\ 1 \end{pmatrix}", F), (r"\begin{pmatrix} 1 & 2 \end{pmatrix}", F),
        (r"\begin{pmatrix} 1 \\ 3 \end{pmatrix}", F)]),
    (r"\begin{pmatrix} 2 & -1 \\ 0 & \frac{1}{2} \end{pmatrix}", [
        (r"\begin{pmatrix}2&-1\\0&\frac{1}{2}\end{pmatrix}", T),
        (r"\begin{pmatrix} 2 & -1 \\ 0 & 0.5 \end{pmatrix}", T),
        (r"\begin{pmatrix} 2 & -1 \\ 0 & 1/2 \end{pmatrix}", T),
        (r"\begin{pmatrix} 2 & 0 \\ -1 & \frac{1}{2} \end{pmatrix}", F),
        (r"\begin{pmatrix} 2 & 1 \\ 0 & \frac12 \end{pmatrix}", F)]),
    (r"\begin{pmatrix} -3 \\ 5 \\ 1 \end{pmatrix}", [
        (r"\begin{pmatrix} -3\\ 5\\ 1\end{pmatrix}", T), (r"\begin{pmatrix}-3 \\5 \\1\end{pmatrix}", T),
        (r"\begin{pmatrix} 3 \\ 5 \\ 1 \end{pmatrix}", F), (r"\begin{pmatrix} -3 \\ 5 \end{pmatrix}", F)]),
    ("[-2, 7]", [("[-2,7]", T), (r"x \in [-2, 7]", T), (r"\left[ -2, 7 \right]", T), ("(-2, 7)", F),
                 ("[-2, 7)", F), ("[7, -2]", F)]),
    (r"(-\infty, -2) \cup (-2, \infty)", [
        (r"(-\infty,-2)\cup(-2,\infty)", T), (r"\left(-\infty, -2\right) \cup \left(-2, \infty\right)", T),
        (r"(-2, \infty) \cup (-\infty, -2)", T), (r"(-\infty, -2] \cup [-2, \infty)", F), (r"(-\infty, \infty)", F)]),
    (r"\{1, 3\}", [(r"\{3, 1\}", T), ("1, 3", T), (r"1 \text{ and } 3", T), (r"\{1, 2\}", F), (r"\{1\}", F)]),
    (r"-\frac{1}{3}", [("-1/3", T), (r"\frac{-1}{3}", T), (r"-\dfrac13", T), (r"\frac{1}{3}", F), ("-0.33", F)]),
    (r"\pi", [(r"\pi", T), (r"\frac{2\pi}{2}", T), ("3.14", F), (r"2\pi", F)]),
    (r"\frac{\sqrt{3}}{2}", [(r"\frac{\sqrt3}{2}", T), (r"\sqrt{3}/2", T), (r"\frac{1}{2}\sqrt{3}", T),
                             (r"\frac{\sqrt{2}}{2}", F), (r"\frac{3}{2}", F)]),
    (r"20\%", [(r"20\%", T), ("20", T), ("20 percent", T), (r"2\%", F), (r"25\%", F)]),
    ("x^2+7x+10", [("x^2 + 7x + 10", T), ("10 + 7x + x^2", T), ("x^2+7x+12", F), ("x^2-7x+10", F)]),
    ("6 - 5i", [("6-5i", T), ("-5i + 6", T), ("6+5i", F)]),
    (r"\$32,348", [("32348", T), (r"\$32,348", T), (r"32,\!348", T), (r"\$32,\!348.00", T), ("32,349", F)]),
    (r"90^\circ", [("90", T), (r"90^{\circ}", T), ("90 degrees", T), (r"45^\circ", F)]),
    (r"3 \text{ inches}", [("3", T), ("3 inches", T), (r"3\text{ in}", T), ("4", F)]),
    (r"\text{(C)}", [("C", T), ("(C)", T), (r"\text{C}", T), (r"\textbf{(C)}", T), ("B", F)]),
    (r"\text{Evelyn}", [("Evelyn", T), (r"\text{evelyn}", T), ("Emily", F)]),
    ("-4", [("-4", T), ("- 4", T), ("\u22124", T), ("4", F), ("-4.0", T)]),
    ("0.25", [(r"\frac14", T), ("1/4", T), ("0.250", T), ("0.52", F)]),
    ("2.5", [(r"\frac{5}{2}", T), (r"2\frac{1}{2}", T), ("5/2", T), ("2.05", F), (r"\frac{2}{5}", F)]),
    (r"1 \pm \sqrt{19}", [(r"1 + \sqrt{19}, 1 - \sqrt{19}", T), (r"1 \pm \sqrt{19}", T), (r"1+\sqrt{19}", F)]),
    (r"\frac{1}{2}, -\frac{1}{3}", [(r"-\frac13, \frac12", T), (r"x = \frac12, x = -\frac13", T), (r"\frac12", F)]),
    (r"\left( 3, \frac{\pi}{2} \right)", [(r"(3, \frac{\pi}{2})", T), (r"(3,\pi/2)", T), (r"(\frac{\pi}{2}, 3)", F)]),
    (r"y = -\frac{1}{2}x + 4", [(r"y=-\frac12 x+4", T), (r"y = 4 - \frac{x}{2}", T), (r"y = \frac12 x + 4", F)]),
    (r"1,\!000,\!000", [("1000000", T), ("10^6", T), ("1,000,000", T), ("100000", F)]),
    (r"\frac{243}{625}", [("0.3888", T), (r"\frac{243}{625}", T), (r"\frac{81}{625}", F)]),
    ("120", [("5!", T), ("120", T), ("4!", F)]),
    ("1024", [("2^{10}", T), ("2^{9}", F)]),
    (r"\sqrt{2}", [(r"\sqrt2", T), ("2^{1/2}", T), (r"\frac{2}{\sqrt{2}}", T), (r"2\sqrt{2}", F)]),
    (r"\frac{14}{3}", [(r"4\frac{2}{3}", T), ("4.67", F), (r"\frac{28}{6}", T), ("14/3", T)]),
    (r"\dfrac{9}{2}", [("4.5", T), ("9/2", T), (r"\frac92", T), ("4.05", F)]),
    ("3", [("k = 3", T), ("x=3", T), ("3.0", T), ("-3", F)]),
    ("(1, 2)", [("(1,2)", T), (r"\left(1, 2\right)", T), ("(2, 1)", F)]),
    ("4210_{5}", [("4210_5", T), ("4211_5", F)]),
]

MATH_STYLES = {
    "qwen-boxed": "Simplifying, we get the result.\n\nThus, the answer is $\\boxed{{{a}}}$.",
    "r1": ("<think>\nLet me work through it. First I get 2, then 7, then I check again.\n</think>\n\n"
           "Putting it together.\n\n**Final Answer**\n\\[\n\\boxed{{{a}}}\n\\]"),
    "llama": "## Step 1: Compute\nWe compute it step by step.\n\nThe final answer is: $\\boxed{{{a}}}$",
    "minerva": "We compute step by step.\nFinal Answer: The final answer is ${a}$. I hope it is correct.",
    "paren-delims": "After simplifying, the answer is \\({a}\\).",
    "display-delims": "Therefore, the answer is:\n\\[\n{a}\n\\]",
    "dollar-which": "So the answer is ${a}$, which is what we wanted.",
    "boxed-display": "Combining the cases,\n\\[\n\\boxed{{{a}}}\n\\]",
}


def _math_rows():
    rng = random.Random(0)
    names = list(MATH_STYLES)
    rows = []
    for gold, forms in MATH:
        gold_text = f"The solution works it out, so the answer is $\\boxed{{{gold}}}$."
        for k, (form, label) in enumerate(forms):
            style = rng.choice(names)
            resp = MATH_STYLES[style].format(a=form)
            rows.append(dict(response=resp, gold=gold_text, label=label, source=f"math-style:{style}",
                             note=f"{form} vs {gold}"))
    # A wrong final answer after the right one was worked out and boxed earlier: must be False.
    for gold, forms in MATH[:12]:
        wrong = next((f for f, lab in forms if not lab), None)
        if wrong:
            resp = f"First attempt: $\\boxed{{{gold}}}$. Wait, that is wrong. Redoing it:\n\\[\n\\boxed{{{wrong}}}\n\\]"
            rows.append(dict(response=resp, gold=f"So the answer is $\\boxed{{{gold}}}$.", label=False,
                             source="math-style:wrong-after-right", note=f"final {wrong} vs {gold}"))
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Hand-written one-off cases: phrasings that do not fit a template.

ONE_OFF = [
    ("The answer is 18, which is the total.", "#### 18", T, "clause after a comma"),
    ("The answer is $18, so she earns $18 a day.", "#### 18", T, "money then a clause"),
    ("The answer is 18 hours, because she works 6 hours for 3 days.", "#### 18", T, "unit then a clause"),
    ("the answer is \\(18\\)", "#### 18", T, "\\( \\) delimiters"),
    ("The answer is \\[18\\]", "#### 18", T, "\\[ \\] delimiters"),
    ("So the answer is 18 (hours).", "#### 18", T, "unit in parentheses"),
    ("The answer is **18**.", "#### 18", T, "bold"),
    ("Therefore, Janet makes **$18** every day at the farmers' market.", "#### 18", T, "bold money, last number"),
    ("The answer is 18, not 20.", "#### 18", T, "answer then a rejected one"),
    ("The answer is 20, not 18.", "#### 18", F, "rejected number is the gold"),
    ("The answer is 18 or 19.", "#### 18", F, "hedge"),
    ("The answer is 18, 19.", "#### 18", F, "two answers"),
    ("The answer is 1,8.", "#### 18", F, "not a thousands separator"),
    ("The answer is 180, which is 10 times 18.", "#### 18", F, "wrong answer, gold number in the clause"),
    ("The answer is 5, which means she has 18 left.", "#### 18", F, "answer is 5; 18 is only in the clause"),
    ("The answer is 5 hours, because 18 divided by 3 is 6.", "#### 18", F, "gold in the reason"),
    ("The total is 18 and the answer is 15.", "#### 18", F, "answer phrase after the gold number"),
    ("The answer is $1,250.50, which she saved.", "#### 1250.5", T, "money with cents and a clause"),
    ("The answer is 1250.5, so she saved that much.", "#### 1250.50", T, "decimal and a clause"),
    ("The answer is 0.5, which is \\(\\frac{1}{2}\\).", "#### 0.5", T, "clause with LaTeX"),
    ("The answer is \\(\\frac{1}{2}\\), which is half.", "\\boxed{\\frac{1}{2}}", T, "\\( \\) frac then a clause"),
    ("The answer is \\(\\frac{1}{3}\\), not \\(\\frac{1}{2}\\).", "\\boxed{\\frac{1}{2}}", F, "rejected after"),
    ("So the answer is $\\frac{3}{4}$, since both cases agree.", "\\boxed{\\frac34}", T, "$..$ then since"),
    ("The answer is $x = 2$, which satisfies the equation.", "\\boxed{2}", T, "x = then a clause"),
    ("The answers are $2$ and $3$.", "\\boxed{2, 3}", T, "two roots in words"),
    ("The answer is 2 and 3, which are the roots.", "\\boxed{2, 3}", T, "roots then a clause"),
    ("The answer is 2, which is one of the roots.", "\\boxed{2, 3}", F, "one root of two"),
    ("The final answer is \\(\\boxed{\\binom{10}{3}}\\).", "\\boxed{120}", T, "binom in a box in \\( \\)"),
    ("There are $\\binom{6}{2} = 15$ ways.", "\\boxed{15}", T, "binom = value, last number"),
    ("The answer is $\\binom{7}{2}$.", "\\boxed{21}", T, "binom in the phrase"),
    ("The answer is $\\binom{7}{2}$.", "\\boxed{42}", F, "binom, wrong value"),
    ("\\boxed{{5 \\choose 2}}", "\\boxed{10}", T, "\\choose"),
    ("\\[\\boxed{\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}}\\]",
     "\\boxed{\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}}",
     T, "identity, spacing"),
    ("\\[\\boxed{\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}}\\]",
     "\\boxed{\\begin{pmatrix}1&0\\\\1&0\\end{pmatrix}}",
     F, "different matrix"),
    ("The answer is \\(\\begin{pmatrix} 3 \\\\ -1 \\end{pmatrix}\\).", "\\boxed{\\begin{pmatrix}3\\\\-1\\end{pmatrix}}",
     T, "vector in \\( \\)"),
    ("The answer is:\n\\[\n\\frac{7}{2}\n\\]\nwhich is 3.5.", "\\boxed{\\frac72}", T, "display after the phrase"),
    ("The answer is:\n$$\n\\frac{7}{2}\n$$", "\\boxed{3.5}", T, "$$ display after the phrase"),
    ("#### 18\n\nThe answer is 18 because 6 times 3 is 18.", "#### 18", T, "#### and phrase agree"),
    ("The final answer is $\\boxed{18}$. I hope it is correct.", "#### 18", T, "llama/minerva"),
    ("The final answer is $\\boxed{17}$. I hope it is correct.", "#### 18", F, "llama/minerva wrong"),
    ("**Final Answer**\n\\[\n\\boxed{18}\n\\]", "#### 18", T, "r1"),
    ("**Final Answer**\n\\[\n\\boxed{18.5}\n\\]", "#### 18", F, "r1 wrong decimal"),
    ("18 hours, because 3 days of 6 hours each.", "#### 18", T, "bare answer then clause"),
    ("It is 18% of the total.", "#### 18", T, "percent sign on a GSM8K percent answer"),
    ("The answer is 18 percent.", "#### 18", T, "percent word"),
    ("The answer is -7, which is negative.", "#### -7", T, "negative then a clause"),
    ("The answer is 7, which is positive.", "#### -7", F, "sign flipped"),
    ("The answer is \\(-\\frac{5}{2}\\).", "\\boxed{-2.5}", T, "negative frac in \\( \\)"),
    ("The answer is 2.50.", "#### 2.5", T, "trailing zero"),
    ("The answer is 25.", "#### 2.5", F, "scale"),
    ("The answer is 1 000 000.", "#### 1000000", T, "space thousands separator"),
    ("The answer is 3.", "#### 3", T, "plain"),
    ("The answer is 3 apples and 4 oranges.", "#### 3", F, "two quantities"),
    ("The answer is 20, so 18 was a wrong guess.", "#### 18", F, "gold after 'so'"),
    ("The answer is 18, 20 if we count Sunday.", "#### 18", F, "second answer with a condition"),
    ("It is either \\boxed{20} or \\boxed{18}.", "#### 18", F, "hedged boxes, gold last"),
    ("\\boxed{20} \\text{ or } \\boxed{18}", "#### 18", F, "hedged boxes with \\text{or}"),
    ("The answers are $x = 2$ and $x = 3$.", "\\boxed{2, 3}", T, "answers are, with x ="),
    ("The answers are 2 and 4.", "\\boxed{2, 3}", F, "one root wrong"),
    ("The answer is \\(\\boxed{18}\\), which is the total.", "#### 18", T, "box in \\( \\) then clause"),
    ("The answer is\n\\[\n\\boxed{\\dfrac{3}{8}}\n\\]", "\\boxed{0.375}", T, "display box after phrase"),
    ("The answer is:\n\\[\n18\n\\]\nbut checking again it is 20.", "#### 18", T,
     "display answer, then a remark with a number (the answer phrase is last)"),
    ("So the total cost is $\\$18$, which is the answer.", "#### 18", T, "money in math, last number"),
    ("The answer is 18\u00a0dollars.", "#### 18", T, "no-break space before the unit"),
    ("The answer is 1.8 \\times 10^{1}.", "#### 18", T, "scientific notation"),
    ("The answer is $\\frac{36}{2}$, which simplifies to 18.", "#### 18", T, "unsimplified fraction then clause"),
    ("The answer is \\(\\sqrt{2}\\), approximately 1.414.", "\\boxed{\\sqrt{2}}", T, "exact then approximation"),
    ("The answer is approximately 1.414, i.e. \\(\\sqrt{2}\\).", "\\boxed{\\sqrt{2}}", F,
     "approximation stated as the answer"),
    ("The answer is 4210_{5}.", "\\boxed{4210_5}", T, "base subscript braces"),
    ("The answer is 4210.", "\\boxed{4210_5}", F, "base subscript missing"),
    ("The answer is 7.5 years, since 90 divided by 12 is 7.5.", "#### 12", F, "wrong; gold in the reason"),
    ("The answer is 12 years, since 90 divided by 7.5 is 12.", "#### 12", T, "right with reason"),
    ("The answer is 5, no wait, it is 6.", "#### 5", F, "corrected after a comma"),
    ("The answer is 18, but actually it is 20.", "#### 18", F, "corrected with but"),
    ("The answer is 18, or maybe 20.", "#### 18", F, "hedge after a comma"),
    ("The answer is 18, and 20 for the second part.", "#### 18", F, "second answer after a comma"),
    ("The answer is 18, and she has 2 left over.", "#### 18", T, "clause with and (verify.py keeps it: FN)"),
]


def _one_off_rows():
    return [dict(response=r, gold=g, label=lab, source="hand", note=n) for r, g, lab, n in ONE_OFF]


def build_rows():
    return _gsm_rows() + _math_rows() + _one_off_rows()


# ----------------------------------------------------------------------------------------------------------------
# Graders

def load(path):
    rows, bad = [], 0
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
                if isinstance(row.get("response"), str) and isinstance(row.get("gold"), str):
                    rows.append(row)
                    continue
            except json.JSONDecodeError:
                pass
            bad += int(bool(line.strip()))
    return rows, bad


def math_verify_grader():
    """A function (response, gold) -> bool using Math-Verify, or None if it is not installed."""
    try:
        from math_verify import parse, verify as mv_verify
    except ImportError:
        return None

    def grade(response, gold):
        if "####" in gold:
            g = gold.rsplit("####", 1)[1].strip().replace(",", "")
            g = f"${g}$"
        elif "\\boxed" in gold:
            g = gold
        else:
            g = f"${gold}$"
        try:
            return bool(mv_verify(parse(g), parse(response)))
        except Exception:
            return False
    return grade


def report(rows, mv, show):
    """Print agreement with Math-Verify and FP/FN of both against the labels, overall and by source."""
    labelled = [r for r in rows if r.get("label") is not None]
    out = {"n": len(labelled), "unlabelled": len(rows) - len(labelled)}
    groups = {}
    for r in labelled:
        r["_ours"] = verify.is_correct(r["response"], r["gold"])
        r["_mv"] = mv(r["response"], r["gold"]) if mv else None
        kind = r["source"].split(":")[0]
        groups.setdefault(kind, []).append(r)
    groups["all"] = labelled
    print(f"{'rows':<14}{'n':>5}{'true':>6}{'ours FP':>9}{'ours FN':>9}{'MV FP':>7}{'MV FN':>7}{'agree':>8}")
    for name, rs in groups.items():
        fp = sum(r["_ours"] and not r["label"] for r in rs)
        fn = sum(r["label"] and not r["_ours"] for r in rs)
        line = f"{name:<14}{len(rs):>5}{sum(r['label'] for r in rs):>6}{fp:>9}{fn:>9}"
        if mv:
            mfp = sum(r["_mv"] and not r["label"] for r in rs)
            mfn = sum(r["label"] and not r["_mv"] for r in rs)
            agree = sum(r["_mv"] == r["_ours"] for r in rs) / len(rs)
            line += f"{mfp:>7}{mfn:>7}{agree:>8.3f}"
        print(line)
        if name == "all":
            out.update(ours_fp=fp, ours_fn=fn)
    if show:
        for r in labelled:
            wrong = r["_ours"] != r["label"] or (mv and r["_mv"] != r["label"])
            if show == "all" or (show == "disagree" and (wrong or (mv and r["_mv"] != r["_ours"]))):
                print(f"\n--- label={r['label']} ours={r['_ours']} mv={r['_mv']} [{r['source']}] {r['note']}")
                print(f"    extracted: {verify.extract_answer(r['response'])!r}   "
                      f"gold: {verify.extract_gold(r['gold'])!r}")
                print("    " + r["response"][-300:].replace("\n", "\n    "))
    return out


def suite_report(path, show):
    """verify.py on Math-Verify's labelled test cases: agreement (all, in scope) and false positives."""
    with open(path, encoding="utf-8") as f:
        cases = [json.loads(line) for line in f if line.strip() and not line.startswith("#")]
    for c in cases:
        c["_ours"] = verify.is_correct(c["pred"], c["gold"])
    for name, rows in (("all", cases), ("in scope", [c for c in cases if c["scope"] == "in"])):
        agree = sum(c["_ours"] == c["expected"] for c in rows)
        fp = sum(c["_ours"] and not c["expected"] for c in rows)
        print(f"{name:<9} {agree}/{len(rows)} agree ({agree / len(rows):.1%}), {fp} false positives")
    if show:
        for c in cases:
            if c["_ours"] != c["expected"] and (show == "all" or c["scope"] == "in"):
                print(f"\n--- #{c['id']} {c['source']} label={c['expected']} ours={c['_ours']} [{c['scope']}]")
                print(f"    extracted: {verify.extract_answer(c['pred'])!r}   gold: {verify.extract_gold(c['gold'])!r}")
                print("    " + c["pred"][-300:].replace("\n", "\n    "))


def import_real(pattern, n, mv, existing):
    """Real SmolLM2 responses: the first n rows of the files matching pattern (sorted), labelled by agreement of
    verify.py and Math-Verify, or left null for a hand label where they disagree."""
    if mv is None:
        raise SystemExit("--import_real needs math-verify (pip install math-verify)")
    files = sorted(glob.glob(pattern))
    if not files:
        raise SystemExit(f"no files match {pattern!r}")
    seen = {r["response"] for r in existing}
    new = []
    for path in files:
        rows, bad = load(path)
        if bad:
            print(f"{path}: skipped {bad} malformed rows")
        for r in rows:
            if len(new) >= n or r["response"] in seen:
                continue
            seen.add(r["response"])
            ours, theirs = verify.is_correct(r["response"], r["gold"]), mv(r["response"], r["gold"])
            new.append(dict(response=r["response"], gold=r["gold"], label=ours if ours == theirs else None,
                            source="smollm2-gsm8k", note=f"{os.path.relpath(path, ROOT)}; verify={ours} mv={theirs}"))
    print(f"imported {len(new)} real responses, {sum(r['label'] is None for r in new)} need a hand label")
    return new


def main():
    parser = argparse.ArgumentParser(description="Audit verify.py against hand labels and Math-Verify.")
    parser.add_argument("--file", default=AUDIT_FILE, help="the audit jsonl")
    parser.add_argument("--build", action="store_true", help="rewrite the synthetic rows from the tables here, "
                                                             "keeping the real ones already in the file")
    parser.add_argument("--import_real", default="", help="glob of eval jsonl files (question, gold, response...)")
    parser.add_argument("--n_real", type=int, default=250, help="how many real responses to import")
    parser.add_argument("--show", default="", choices=["", "disagree", "all"], help="print cases")
    parser.add_argument("--suite", action="store_true", help="report on Math-Verify's own test cases instead "
                                                             "(tests/math_verify_cases.jsonl); --show=all includes "
                                                             "the out-of-scope disagreements")
    args = parser.parse_args()
    if args.suite:
        suite_report(SUITE_FILE, args.show)
        return

    mv = math_verify_grader()
    if mv is None:
        print("math-verify is not installed: reporting verify.py against the labels only")
    rows = load(args.file)[0] if os.path.exists(args.file) else []
    if args.build:
        rows = build_rows() + [r for r in rows if r["source"] == "smollm2-gsm8k"]
    if args.import_real:
        rows += import_real(args.import_real, args.n_real, mv, rows)
    if args.build or args.import_real:
        with open(args.file, "w") as f:
            for r in rows:
                f.write(json.dumps({k: r[k] for k in ("response", "gold", "label", "source", "note")}) + "\n")
        print(f"wrote {len(rows)} rows to {args.file}")
    report(rows, mv, args.show)


if __name__ == "__main__":
    main()
