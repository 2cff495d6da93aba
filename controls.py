"""
The two controls of the SWARR experiment (rl.py --teacher, rl.py --algo=rft). Each swaps GRPO's advantage (step 2 of
rl.py) and keeps the rest of GRPO: the same sampling under the window, loss, normalizer and update, so a difference
in the result is the advantage's.

On-policy distillation (--teacher): does RL help because it optimizes the windowed model's own success, or would
imitating the full-attention model on the student's own samples do as well? The teacher, frozen at FULL attention,
scores the sampled tokens; each token's advantage is their log-ratio, so with rho = 1 the gradient is the per-token
reverse KL(student || teacher)'s along the sampled path (GKD; Thinking Machines' "on-policy distillation"). The
reward is only logged. Simplification: discount 0 (a token is judged by how much the teacher likes it, not by where
it leads); the teacher must share the student's tokenizer.

Rejection-sampling fine-tuning (--algo=rft): is it the policy gradient, or only training on the model's own windowed
successes? A = 1 on the correct samples, 0 elsewhere, and only those count in the token normalizer, so with rho = 1
the update is plain SFT (mean NLL per token) on them: STaR / expert iteration / RFT.
"""
import os

import convert


def rft_advantages(correct):
    """--algo=rft: correct (P, G) 1/0 -> advantages (P, G) = 1 on the correct completions, 0 elsewhere."""
    return (correct > 0.5).float()


def distill_advantages(teacher_logp, student_logp, mask):
    """--teacher: the per-token advantage (B, L) = log p_teacher - log p_student of each sampled token, detached, 0
    off the mask. Its mean over the student's own samples estimates minus the reverse KL(student || teacher) per
    token: push up the tokens the teacher likes more than the student does, push down the others; zero (no
    gradient) wherever the two models agree."""
    return (teacher_logp - student_logp).detach() * mask


def load_teacher(init, device, student, student_tok=None):
    """--teacher: the frozen teacher, fp32 on device, always at FULL attention (window=None, whatever its checkpoint
    says). Its tokenizer must be the student's (student_tok, which rl.py always passes)."""
    if not init.startswith(("hf:", "gguf:")) and not os.path.isdir(init):
        raise FileNotFoundError(f"--teacher: no checkpoint at {init}")
    teacher, teacher_tok = convert.load_model(init, window=None, device=device, dtype="float32")
    if teacher.config.vocab_size != student.config.vocab_size:
        raise ValueError(f"--teacher: vocabulary of {teacher.config.vocab_size} tokens, the student's has "
                         f"{student.config.vocab_size}; the teacher must share the student's tokenizer")
    if student_tok is not None and teacher_tok.fingerprint() != student_tok.fingerprint():  # not only the size
        raise ValueError(f"--teacher: {init} has another tokenizer than the student (the same number of ids, but "
                         f"not the same tokens); the teacher must share the student's tokenizer")
    return teacher.eval().requires_grad_(False)
