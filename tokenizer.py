r"""Byte-level BPE tokenizer on tiktoken, built from a model's own tokenizer files.

    tok = Tokenizer.from_hf_dir("path/to/hf_model")      # tokenizer.json + tokenizer_config.json
    tok = Tokenizer.from_gguf(gguf.GGUFReader(path))     # GGUF metadata (llama.cpp key names)
    tok = Tokenizer.byte_level()                         # 256 bytes + <|endoftext|>, for tiny scratch models
    ids = tok.render_chat([{"role": "user", "content": "What is 2+3?"}])  # ends with the assistant prompt
    ids = tok.render_chat(messages, enable_thinking=False)  # extra keywords are template variables (Qwen3)
    tok.save(out_dir); Tokenizer.load(out_dir)           # HF-loadable tokenizer.json + tokenizer_config.json

Supported: byte-level BPE (GPT-2, Llama-3, Qwen2/2.5/3, SmolLM2, Mistral-Nemo "tekken"). How Hugging Face's
tokenizer.json pipeline maps onto tiktoken:
  normalizer     none, or NFC/NFKC/NFD/NFKD (Qwen2 uses NFC), applied in Python before tiktoken.
  pre_tokenizer  becomes one tiktoken split regex (see split_pattern):
                   ByteLevel(use_regex=True)            -> GPT-2's regex;
                   Split(regex, Isolated) + ByteLevel   -> that regex (Llama-3, Qwen2, tekken);
                   Digits(individual_digits) + ByteLevel -> "\p{N}|" + GPT-2's regex with ` ?\p{N}+` removed and
                     `\s+(?!\S)` turned into `\s+(?![^\s\p{N}])`, because HF first cuts the text at digits and
                     only then runs GPT-2's regex on each digit-free piece (a digit acts as end of text there).
  model          BPE vocab + merges -> tiktoken mergeable ranks. tiktoken merges the adjacent pair whose result has
                 the lowest rank, HF the pair with the lowest merge index; these agree when rank = merge order. We
                 use rank = token id when ids increase with merge order (true for all the families above) and
                 otherwise rank by merge index and translate ranks to ids after encoding.
  added_tokens   special ones are never parsed from text by encode() (prompt injection stays plain text); they
                 enter only through the chat template's own text (render_chat) and special_token_id. Non-special
                 added tokens (e.g. Qwen's <tool_call>) are matched whole in the text, as HF does.
GGUF: tokenizer.ggml.pre picks the split regex the way llama.cpp does (e.g. "smollm" isolates digits, like SmolLM2's
tokenizer.json; transformers' GGUF loader uses GPT-2's regex there and differs on a space run before a digit).
Vocabularies that lack some bytes (SmolLM2 has no token for 21 byte values, e.g. \x04) drop those bytes like HF.

Chat: render_chat runs the model's own Jinja chat template (tokenizer_config.json / chat_template.jinja
`chat_template`, the "default" one of a named list (none named so is an error, as in transformers), or GGUF
tokenizer.chat_template) as transformers does: jinja2's ImmutableSandboxedEnvironment with trim_blocks,
lstrip_blocks and loop controls, raise_exception, strftime_now, tojson; variables messages, add_generation_prompt,
bos/eos/unk/pad_token, tools=None and any extra keyword (enable_thinking=False, date_string=...). Unlike
transformers, a render is bounded in time, output and value size (MAX_RENDER_SECONDS, MAX_RENDER_CHARS,
MAX_INT_BITS): a hostile template stops with one line naming the limit. The rendered text is tokenized as
apply_chat_template does (added-token strings become their ids, the text between them is encoded; BOS only where
the template writes {{ bos_token }}), with the safety rule of encode(): a special token written by the template
becomes its id, the same string inside a message stays text. transformers' default would turn a user's "<|im_end|>" into the real token; our ids equal
apply_chat_template(..., sanitize_control_tokens=True) with tokenizer.chat_control_tokens = [] (only special
tokens are control tokens), which equals its default for messages without special-token text. Its
sanitize_control_tokens=True alone also marks non-special added tokens that the template contains, such as
Qwen3's <think>, and then garbles Qwen3's reasoning ("<think>\n\n...\n\n</think>\n\n\n\n"); here <think> in a
message is the added token, as in encode(). Without a template (base models, the byte tokenizer) the "plain"
format is used:
    [bos if the tokenizer adds one] + "{system}\n\n" (only if given) + "{user}\n" + "{assistant}" + [eos] ...
each turn encoded on its own, so a prompt's ids are always a prefix of the full conversation's ids. eos_id, the
token that ends SFT targets, is the template's end of turn: <|im_end|> for ChatML, <|eot_id|> for Llama-3, else
tokenizer_config's eos_token (Mistral's </s>, which its template writes after an assistant turn).

Limitations (stated, not hidden): sep/cls/mask_token are not template variables and tokenizer_config's
chat_control_tokens is not read; tools are passed as JSON-schema dicts (tools=[...]), not Python functions; a
message's "thinking"/"reasoning" field is not copied to "reasoning_content" (transformers does; pass that name);
added-token flags lstrip/rstrip/single_word/normalized are ignored (Qwen2.5, Llama-3 and SmolLM2 set them false on
the tokens their templates write); tiktoken always returns a whole pre-token piece that is itself in the
vocab (HF's ignore_merges=True), which for BPE-trained vocabularies gives the same ids as HF's merge loop.
"""

import datetime
import functools
import hashlib
import json
import math
import os
import re
import sys
import time
import unicodedata

import tiktoken

UNSUPPORTED = "swarr handles byte-level BPE (GPT-2, Llama-3, Qwen2/3, SmolLM2, Mistral-Nemo...)"

# HF tokenizers' ByteLevel(use_regex=True) pattern (GPT-2's, with a final \s+ so that every character is covered).
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
TEKKEN_PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
                  r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
                  r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT4O_PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
                 r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
                 r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
                 r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
                 r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _byte_level(use_regex):
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": use_regex}


def _split_then_bytes(pattern):
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
        _byte_level(False)]}


DIGITS_THEN_GPT2 = {"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": True}, _byte_level(True)]}

# tokenizer.ggml.pre -> HF pre_tokenizer, grouped as llama.cpp's llm_tokenizer_bpe groups them (llama-vocab.cpp).
GGUF_PRE_TOKENIZERS = {
    **dict.fromkeys(["gpt-2", "gpt2", "mpt", "olmo", "jais", "trillion"], _byte_level(True)),
    **dict.fromkeys(["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"],
                    DIGITS_THEN_GPT2),
    **dict.fromkeys(["llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral", "dbrx", "smaug-bpe"],
                    _split_then_bytes(LLAMA3_PATTERN)),
    **dict.fromkeys(["qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"], _split_then_bytes(QWEN2_PATTERN)),
    "tekken": _split_then_bytes(TEKKEN_PATTERN),
    **dict.fromkeys(["gpt-4o", "llama4"], _split_then_bytes(GPT4O_PATTERN)),
}

BYTE_LEVEL_DECODER = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}


def bytes_to_unicode():
    """GPT-2's table: every byte gets a printable character, so byte-level tokens can be JSON strings."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def split_pattern(pre_tokenizer):
    """The one tiktoken regex that splits text like this HF pre_tokenizer followed by byte-level BPE."""
    steps = [] if pre_tokenizer is None else (
        pre_tokenizer["pretokenizers"] if pre_tokenizer.get("type") == "Sequence" else [pre_tokenizer])
    kinds = [s.get("type") for s in steps]
    if not steps or kinds[-1] != "ByteLevel":
        raise ValueError(f"unsupported pre_tokenizer {kinds or None} (no ByteLevel step, so not byte-level BPE): "
                         f"{UNSUPPORTED}")
    byte_level = steps[-1]
    if byte_level.get("add_prefix_space"):
        raise ValueError("unsupported pre_tokenizer: ByteLevel(add_prefix_space=True); " + UNSUPPORTED)
    if kinds == ["ByteLevel"] and byte_level.get("use_regex", True):
        return GPT2_PATTERN
    if kinds == ["Split", "ByteLevel"] and not byte_level.get("use_regex", True):
        split = steps[0]
        if split.get("behavior") != "Isolated" or split.get("invert"):
            raise ValueError(f"unsupported Split pre_tokenizer (behavior={split.get('behavior')}, "
                             f"invert={split.get('invert')}); only Isolated, invert=false is supported")
        pattern = split["pattern"]
        return pattern["Regex"] if "Regex" in pattern else re.escape(pattern["String"])
    if kinds == ["Digits", "ByteLevel"] and byte_level.get("use_regex", True):
        # HF cuts digits out first and runs GPT-2's regex on the digit-free pieces: digits get their own
        # alternative, ` ?\p{N}+` must go (it would glue a space to a digit), and a digit ends a whitespace run
        # the way the end of the text does.
        digits = r"\p{N}" if steps[0].get("individual_digits") else r"\p{N}+"
        body = GPT2_PATTERN.replace(r"| ?\p{N}+", "").replace(r"\s+(?!\S)", r"\s+(?![^\s\p{N}])")
        return digits + "|" + body
    raise ValueError(f"unsupported pre_tokenizer sequence {kinds}; supported: ByteLevel, Split+ByteLevel, "
                     f"Digits+ByteLevel ({UNSUPPORTED})")


def _normalizer_forms(normalizer):
    steps = [] if normalizer is None else (
        normalizer["normalizers"] if normalizer.get("type") == "Sequence" else [normalizer])
    forms = [s.get("type") for s in steps]
    bad = [f for f in forms if f not in ("NFC", "NFKC", "NFD", "NFKD")]
    if bad:
        raise ValueError(f"unsupported tokenizer.json normalizer {bad}: {UNSUPPORTED}")
    return forms


def _token_name(value, key="a special token", where="tokenizer_config.json"):
    """tokenizer_config.json writes special tokens either as strings or as AddedToken dicts."""
    name = value.get("content") if isinstance(value, dict) else value
    if name is not None and not isinstance(name, str):
        raise ValueError(f"{where}: {key} must be a string (or an AddedToken object with a string 'content'), got "
                         f"{type(name).__name__} {repr(name)[:60]}")
    return name


def _default_template(value, where):
    """tokenizer_config.json's chat_template -> the template to render (or None), as transformers reads it: a
    string, or named templates (a list of {"name", "template"} objects, or an object name -> template), of which
    transformers renders the one named "default" and refuses to guess when there is none; so do we."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        for entry in value:
            if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                    and isinstance(entry.get("template"), str)):
                raise ValueError(f"{where}: each entry of a chat_template list needs a string 'name' and a string "
                                 f"'template', got {repr(entry)[:80]}")
        value = {entry["name"]: entry["template"] for entry in value}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: chat_template must be a string or a list of {{\"name\", \"template\"}} objects, "
                         f"got {type(value).__name__} {repr(value)[:60]}")
    bad = next((name for name, template in value.items() if not isinstance(template, str)), None)
    if bad is not None:
        raise ValueError(f"{where}: the chat template named {bad!r} is not a string")
    if "default" not in value:
        raise ValueError(f"{where}: chat_template has no template named 'default' (it has "
                         f"{sorted(value) or 'none'}); transformers refuses to pick one too: name one 'default' or "
                         f"put it in chat_template.jinja")
    return value["default"]


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        try:
            obj = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


# transformers' private-use markers for special tokens in user-given strings (chat_template_utils.py): a marked
# token is encoded as text, an unmarked one (written by the template) as its id.
CONTROL_START, CONTROL_END = "\U000f0000", "\U000f0001"


# A chat template is code that comes with a model. jinja2's sandbox keeps it away from Python's internals; these
# bounds keep it from running forever or filling the memory (transformers hangs on such templates). A real template
# renders a conversation in milliseconds, into a few thousand characters. Module globals: tests lower them.
MAX_RENDER_SECONDS = 10.0
MAX_RENDER_CHARS = 4_000_000  # a chat this long is 1M+ tokens, past the context of every supported model
MAX_INT_BITS = 100_000  # about 30,000 digits; Python refuses to print an int of more than 4,300


class RenderLimit(Exception):
    """A chat template went past MAX_RENDER_SECONDS, MAX_RENDER_CHARS or MAX_INT_BITS."""


def _bounded(value):
    """value, unless it is a string or container longer than the output limit, or an int past MAX_INT_BITS."""
    if isinstance(value, (str, bytes, list, tuple, dict)) and len(value) > MAX_RENDER_CHARS:
        raise RenderLimit(f"a value of {len(value):,} characters or items, past the output limit of "
                          f"{MAX_RENDER_CHARS:,}")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise RenderLimit(f"a number of {value.bit_length():,} bits, past the limit of {MAX_INT_BITS:,}")
    return value


def _check_sizes(args, kwargs=None):
    """Refuse an int argument larger than the output limit before a call that may size a value by it
    ('x'.ljust(n), center(n), lipsum(n), '%*s' % (n, x)...): the allocation would come before any check after."""
    for a in (*args, *(kwargs or {}).values()):
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_RENDER_CHARS:
            raise RenderLimit(f"a number argument of {a if a.bit_length() < 64 else 'many digits'}, past the output "
                              f"limit of {MAX_RENDER_CHARS:,}")


def _check_binop(operator, left, right):
    """Refuse an operation whose result would pass the bounds, before computing it: a sequence repeated too often,
    a product or a power of ints too large (Python computes (n+8)**(9**9) for hours, uninterruptibly)."""
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_RENDER_CHARS:
                raise RenderLimit(f"a sequence of {len(seq):,} repeated {n:,} times, past the output limit of "
                                  f"{MAX_RENDER_CHARS:,}")
        if ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise RenderLimit(f"a product of more than {MAX_INT_BITS:,} bits")
    elif operator == "**" and ints and abs(left) > 1 and right > 0 and right * math.log2(abs(left)) > MAX_INT_BITS:
        raise RenderLimit(f"a power of more than {MAX_INT_BITS:,} bits")
    elif operator == "%" and isinstance(left, str):
        _check_sizes(right if isinstance(right, tuple) else (right,))


def render_bounded(template, **variables):
    """template.render(**variables) within MAX_RENDER_SECONDS and MAX_RENDER_CHARS of output, else RenderLimit.
    The output is counted as it streams; the clock is read at every function call during the render and at every
    line of the template's own code (a trace function, set only for the render), so a loop that writes nothing
    stops too. (One slow builtin call cannot be interrupted: the environment of compile_chat_template bounds the
    operations that could make one.)"""
    deadline = time.monotonic() + MAX_RENDER_SECONDS

    def check_clock(frame, event, arg):
        if time.monotonic() > deadline:
            raise RenderLimit(f"the render took more than {MAX_RENDER_SECONDS:g} s (the time limit)")
        return check_clock if frame.f_code.co_filename == "<template>" else None  # jinja2's name for its code

    previous = sys.gettrace()
    sys.settrace(check_clock)
    stream = template.generate(**variables)
    try:
        pieces, size = [], 0
        for piece in stream:
            size += len(piece)
            if size > MAX_RENDER_CHARS:
                raise RenderLimit(f"the output passed {MAX_RENDER_CHARS:,} characters (the output limit)")
            pieces.append(piece)
        return "".join(pieces)
    finally:
        sys.settrace(previous)
        stream.close()


@functools.lru_cache(maxsize=16)
def compile_chat_template(template):
    """The chat template compiled as transformers compiles it: sandboxed, trim_blocks + lstrip_blocks, loop
    controls, {% generation %} (a no-op here), raise_exception, strftime_now and a tojson that does not escape
    HTML; plus the bounds above: every value that an operator, a call or a filter makes is checked (_bounded),
    and the operations that could build a huge one are checked before they run (_check_binop, _check_sizes).
    Render it with render_bounded. jinja2 is imported here only: `import tokenizer` and template-less tokenizers do
    not need it."""
    import jinja2
    import jinja2.compiler
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedCodeGenerator(jinja2.compiler.CodeGenerator):
        def visit_Concat(self, node, frame):  # a ~ b: the one string-building operator the sandbox cannot intercept
            self.write("environment.bounded(")
            super().visit_Concat(node, frame)
            self.write(")")

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        code_generator_class = BoundedCodeGenerator
        intercepted_binops = frozenset(["*", "**", "+", "%"])

        def bounded(self, value):
            return _bounded(value)

        def call_binop(self, context, operator, left, right):
            _check_binop(operator, left, right)
            return _bounded(super().call_binop(context, operator, left, right))

        def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja2's own spelling)
            _check_sizes(args, kwargs)
            return _bounded(super().call(__context, __obj, *args, **kwargs))

    def bounded_filter(f):
        first = 2 if getattr(f, "jinja_pass_arg", None) is not None else 1  # (context,) value, then arguments

        @functools.wraps(f)  # keeps jinja_pass_arg, which tells jinja2 what to pass
        def checked(*args, **kwargs):
            _check_sizes(args[first:], kwargs)
            return _bounded(f(*args, **kwargs))
        return checked

    class Generation(jinja2.ext.Extension):  # transformers uses it to mask assistant tokens; we render it as is
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    def no_underscore(name):  # transformers' hardening of namespace(): no access to CPython internals
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"chat templates cannot set the attribute {name!r}")

    class Namespace(jinja2.utils.Namespace):
        def __init__(*args, **kwargs):
            for name in dict(*args[1:], **kwargs):
                no_underscore(name)
            jinja2.utils.Namespace.__init__(*args, **kwargs)

        def __setitem__(self, name, value):
            no_underscore(name)
            super().__setitem__(name, value)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = BoundedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.filters = {name: bounded_filter(f) for name, f in env.filters.items()}
    env.globals.update(raise_exception=raise_exception, namespace=Namespace,
                       strftime_now=lambda fmt: datetime.datetime.now().strftime(fmt))
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as e:
        raise ValueError(f"chat template syntax error on line {e.lineno}: {e.message}") from None


def detect_chat_format(template):
    """A label for logs and for the end-of-turn token that ends SFT targets: "chatml" (<|im_end|>), "llama3"
    (<|eot_id|>), "template" (any other template; tokenizer_config's eos) or "plain" (no template)."""
    if not template:
        return "plain"
    if "<|im_start|>" in template:
        return "chatml"
    if "<|start_header_id|>" in template:
        return "llama3"
    return "template"


class Tokenizer:
    """A tiktoken.Encoding plus what chat and generation need: eos/bos/pad ids and the chat template.

    vocab: byte-level (GPT-2 alphabet) token string -> id, merges: [(left, right)] in priority order (None: rank
    by id), added_tokens: [{"id", "content", "special"}] as in tokenizer.json, pre_tokenizer/normalizer/
    post_processor: tokenizer.json sections (kept for save()), chat_template: Jinja source or None, bos/eos/pad/
    unk_token: token strings (the template sees them as variables). Usually built by from_hf_dir / from_gguf /
    byte_level rather than directly."""

    def __init__(self, vocab, merges, added_tokens, pre_tokenizer, normalizer=None, post_processor=None,
                 ignore_merges=False, chat_template=None, bos_token=None, eos_token=None, pad_token=None,
                 unk_token=None, add_bos=False, eos_id=None, eos_ids=None, name="swarr"):
        self.vocab, self.merges, self.added_tokens = vocab, merges, added_tokens
        self.pre_tokenizer, self.normalizer, self.post_processor = pre_tokenizer, normalizer, post_processor
        if chat_template is not None and not isinstance(chat_template, str):  # e.g. a GGUF field of another type
            raise ValueError(f"the chat template must be a string, got {type(chat_template).__name__}")
        self.ignore_merges, self.chat_template, self.add_bos = ignore_merges, chat_template, add_bos
        self.bos_token, self.eos_token, self.pad_token, self.unk_token = bos_token, eos_token, pad_token, unk_token
        self._forms = _normalizer_forms(normalizer)
        pattern = split_pattern(pre_tokenizer)

        # Byte-level tokens: the vocab strings spelled through GPT-2's byte table.
        token_bytes = {}
        for token, i in vocab.items():
            if all(c in CHAR_TO_BYTE for c in token):
                token_bytes[i] = bytes(CHAR_TO_BYTE[c] for c in token)
        # Merge order is BPE priority in HF; a token made by no merge (and longer than a byte) is never produced
        # by HF's BPE, so it must not be reachable in tiktoken either: it becomes decode-only.
        first_merge = {}
        for k, (left, right) in enumerate(merges or []):
            if left not in vocab or right not in vocab or left + right not in vocab:
                raise ValueError(f"tokenizer merge {k} ({left!r}, {right!r}) uses tokens missing from the vocab")
            first_merge.setdefault(vocab[left + right], k)
        if merges is None:  # ranks come from ids directly (byte_level, or a vocab built from tiktoken ranks)
            first_merge = {i: i for i, b in token_bytes.items() if len(b) > 1}
        merged = sorted(first_merge, key=first_merge.get)
        singles = {i: b for i, b in token_bytes.items() if len(b) == 1}
        if len(set(singles.values())) != len(singles):
            raise ValueError("tokenizer vocab has two tokens for the same byte")

        if all(a < b for a, b in zip(merged, merged[1:])):
            rank_of = {i: i for i in list(singles) + merged}  # ids already follow merge priority
        else:
            rank_of = {i: b[0] for i, b in singles.items()}
            rank_of.update({i: 256 + k for k, i in enumerate(merged)})
        mergeable = {token_bytes[i]: r for i, r in rank_of.items()}

        # Everything else that has an id (added tokens, unreachable vocab entries) decodes through tiktoken's
        # special-token table; encode() never lets tiktoken match them.
        self._added_ids = {a["content"]: a["id"] for a in added_tokens}
        names = {}
        for i, b in token_bytes.items():
            if i not in rank_of:
                try:
                    names[i] = b.decode("utf-8")
                except UnicodeDecodeError:  # not representable as a name: keep it mergeable, lowest priority
                    rank_of[i] = max(rank_of.values(), default=-1) + 1
                    mergeable[b] = rank_of[i]
        for a in added_tokens:
            if a["id"] not in rank_of:
                names[a["id"]] = a["content"]
        for token, i in vocab.items():
            if i not in token_bytes and i not in names:  # a vocab entry outside the byte alphabet
                names[i] = token
        identity = all(i == r for i, r in rank_of.items())
        next_rank = max(rank_of.values(), default=-1) + 1
        specials = {}
        for i in sorted(names):
            r = i if identity else next_rank
            next_rank += not identity
            if names[i] in specials:
                raise ValueError(f"tokenizer has two ids for the special token {names[i]!r}")
            specials[names[i]] = r
            rank_of[i] = r
        self._id_of_rank = None if identity else {r: i for i, r in rank_of.items()}
        self._rank_of_id = None if identity else rank_of
        self.enc = tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=mergeable, special_tokens=specials)
        self.vocab_size = max(rank_of) + 1

        # Bytes with no token are dropped by HF; tiktoken would fail on them, so texts holding them take a slow path.
        missing = bytes(sorted(set(range(256)) - {b[0] for b in singles.values()}))
        self._missing_bytes = missing
        self._missing_re = re.compile(b"[" + re.escape(missing) + b"]") if missing else None
        plain_added = sorted((a["content"] for a in added_tokens if not a.get("special")), key=len, reverse=True)
        self._plain_added_re = re.compile("|".join(map(re.escape, plain_added))) if plain_added else None
        every_added = sorted(self._added_ids, key=len, reverse=True)  # longest first, as HF matches added tokens
        self._added_re = re.compile("|".join(map(re.escape, every_added))) if every_added else None
        special = sorted((a["content"] for a in added_tokens if a.get("special")), key=len, reverse=True)
        self._special_re = re.compile("|".join(map(re.escape, special)) or "(?!)")  # (?!) matches nothing

        # Chat and generation ids.
        self.chat_format = detect_chat_format(chat_template)
        self.bos_id = self._id_or_none(bos_token)
        config_eos = self._id_or_none(eos_token)
        turn_end = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>"}.get(self.chat_format)
        if eos_id is not None:
            self.eos_id = eos_id
        elif turn_end is not None:
            self.eos_id = self.special_token_id(turn_end)
        elif config_eos is not None:
            self.eos_id = config_eos
        elif "<|endoftext|>" in self._added_ids:
            self.eos_id = self._added_ids["<|endoftext|>"]
        else:
            raise ValueError("tokenizer has no eos token: set eos_token in tokenizer_config.json")
        if eos_ids is None:
            stops = [self.eos_id, config_eos] + [self._added_ids.get(t) for t in
                                                 ("<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>",
                                                  "<|end_of_text|>")]
            eos_ids = [i for i in dict.fromkeys(stops) if i is not None]
        self.eos_ids = list(eos_ids)
        pad = self._id_or_none(pad_token)
        self.pad_id = pad if pad is not None else self.eos_id

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_hf_dir(cls, path):
        """Read tokenizer.json, tokenizer_config.json (and chat_template.jinja / special_tokens_map.json)."""
        path = os.fspath(path)
        tok_file = os.path.join(path, "tokenizer.json")
        if not os.path.isfile(tok_file):
            raise FileNotFoundError(f"no tokenizer.json in {path!r}: swarr needs the fast (tokenizer.json) tokenizer "
                                    f"files of a byte-level BPE model")
        tj = _read_json(tok_file)
        config = {}
        for extra in ("special_tokens_map.json", "tokenizer_config.json"):  # the config wins
            if os.path.isfile(os.path.join(path, extra)):
                config.update(_read_json(os.path.join(path, extra)))
        config_file = os.path.join(path, "tokenizer_config.json")
        jinja = os.path.join(path, "chat_template.jinja")
        if os.path.isfile(jinja):  # recent transformers write the template here; it wins over the config's
            with open(jinja, encoding="utf-8") as f:
                template = f.read()
        else:
            template = _default_template(config.get("chat_template"), config_file)
        model = tj.get("model") if isinstance(tj.get("model"), dict) else {}
        kind = model.get("type")
        if kind != "BPE":
            raise ValueError(f"unsupported tokenizer type {kind}: {UNSUPPORTED}")
        if model.get("byte_fallback") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
            raise ValueError(f"unsupported tokenizer type BPE with byte_fallback/subword affixes (sentencepiece "
                             f"style): {UNSUPPORTED}")
        vocab = model.get("vocab")
        if not isinstance(vocab, dict):
            raise ValueError(f"{tok_file}: model.vocab must be an object token -> id, got "
                             f"{'nothing' if vocab is None else type(vocab).__name__}")
        bad = next((t for t, i in vocab.items() if type(i) is not int), None)
        if bad is not None:
            raise ValueError(f"{tok_file}: model.vocab maps {bad!r} to {vocab[bad]!r}, not an integer id")
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
        bad = next((k for k, m in enumerate(merges) if len(m) != 2), None)
        if bad is not None:
            raise ValueError(f"{tok_file}: merge {bad} is {model['merges'][bad]!r}, not a pair of tokens")
        added = []
        for a in tj.get("added_tokens") or []:
            if not isinstance(a, dict) or type(a.get("id")) is not int or not isinstance(a.get("content"), str):
                raise ValueError(f"{tok_file}: added token {a!r} needs an integer 'id' and a string 'content'")
            added.append({"id": a["id"], "content": a["content"], "special": bool(a.get("special"))})
        post = tj.get("post_processor")
        swarr = config.get("swarr") or {}
        special = {key: _token_name(config.get(key), key, config_file)
                   for key in ("bos_token", "eos_token", "pad_token", "unk_token")}
        add_bos = bool(config.get("add_bos_token")) or _post_processor_adds_bos(post, special["bos_token"])
        return cls(vocab, merges, added, tj.get("pre_tokenizer"), normalizer=tj.get("normalizer"),
                   post_processor=post, ignore_merges=bool(model.get("ignore_merges")), chat_template=template,
                   **special,
                   add_bos=add_bos, eos_id=swarr.get("eos_id"), eos_ids=swarr.get("eos_ids"),
                   name=os.path.basename(os.path.abspath(path)) or "hf")

    @classmethod
    def from_gguf(cls, reader):
        """Read the tokenizer from a gguf.GGUFReader (or a .gguf path): llama.cpp's tokenizer.ggml.* keys."""
        if isinstance(reader, (str, os.PathLike)):
            import gguf  # optional dependency, only for GGUF files
            reader = gguf.GGUFReader(os.fspath(reader))

        def get(key, default=None):
            field = reader.fields.get(key)
            return default if field is None else field.contents()

        kind = get("tokenizer.ggml.model")
        if kind != "gpt2":
            raise ValueError(f"unsupported tokenizer type {kind} (tokenizer.ggml.model): {UNSUPPORTED}")
        pre_name = get("tokenizer.ggml.pre", "default")
        if pre_name not in GGUF_PRE_TOKENIZERS:
            raise ValueError(f"unsupported tokenizer.ggml.pre {pre_name!r}; supported: "
                             f"{', '.join(sorted(GGUF_PRE_TOKENIZERS))}")
        tokens = get("tokenizer.ggml.tokens")
        if not tokens:
            raise ValueError("GGUF file has no tokenizer.ggml.tokens (no vocabulary)")
        types = get("tokenizer.ggml.token_type") or [1] * len(tokens)
        # Tokens are stored in GPT-2's byte alphabet; a few files store raw text (spaces etc.) for control tokens.
        vocab = {(t if all(c in CHAR_TO_BYTE for c in t) else "".join(BYTE_TO_CHAR[b] for b in t.encode())): i
                 for i, t in enumerate(tokens)}
        merges = [tuple(m.split(" ", 1)) for m in get("tokenizer.ggml.merges", [])]
        # token_type 3 = control (special), 4 = user-defined (added, matched whole in text, not special).
        added = [{"id": i, "content": t, "special": ty == 3} for i, (t, ty) in enumerate(zip(tokens, types))
                 if ty in (3, 4)]

        def token(key):
            i = get(key)
            return None if i is None or i >= len(tokens) else tokens[i]

        add_bos = bool(get("tokenizer.ggml.add_bos_token", False))
        bos = token("tokenizer.ggml.bos_token_id")
        post = None
        if add_bos and bos is not None:  # what a Llama-3 tokenizer.json says with its TemplateProcessing
            post = {"type": "TemplateProcessing",
                    "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                    "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                             {"Sequence": {"id": "B", "type_id": 1}}],
                    "special_tokens": {bos: {"id": bos, "ids": [get("tokenizer.ggml.bos_token_id")], "tokens": [bos]}}}
        return cls(vocab, merges, added, GGUF_PRE_TOKENIZERS[pre_name], post_processor=post,
                   ignore_merges=pre_name in ("llama3", "llama-v3", "llama-bpe", "tekken"),
                   chat_template=get("tokenizer.chat_template"), bos_token=bos,
                   eos_token=token("tokenizer.ggml.eos_token_id"), pad_token=token("tokenizer.ggml.padding_token_id"),
                   unk_token=token("tokenizer.ggml.unknown_token_id"), add_bos=add_bos,
                   name=get("general.name", "gguf"))

    @classmethod
    def byte_level(cls):
        """256 byte tokens (id = byte value) + <|endoftext|> (id 256, eos and pad); no template: "plain" chat."""
        vocab = {BYTE_TO_CHAR[b]: b for b in range(256)}
        added = [{"id": 256, "content": "<|endoftext|>", "special": True}]
        return cls(vocab, None, added, _byte_level(True), eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                   name="bytes")

    @classmethod
    def load(cls, path):
        """A directory written by save() or any HF tokenizer directory; a .gguf file also works."""
        path = os.fspath(path)
        if path.endswith(".gguf"):
            return cls.from_gguf(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"tokenizer directory {path!r} does not exist")
        return cls.from_hf_dir(path)

    def save(self, out_dir):
        """Write tokenizer.json + tokenizer_config.json that transformers' AutoTokenizer loads and that encode
        exactly like this tokenizer."""
        os.makedirs(out_dir, exist_ok=True)
        merges = self.merges if self.merges is not None else self._merges_from_ranks()
        tj = {
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": a["id"], "content": a["content"], "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": a["special"]}
                             for a in self.added_tokens],
            "normalizer": self.normalizer, "pre_tokenizer": self.pre_tokenizer,
            "post_processor": self.post_processor, "decoder": BYTE_LEVEL_DECODER,
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": self.ignore_merges, "vocab": self.vocab,
                      "merges": [list(m) for m in merges]},
        }
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": self.bos_token,
                  "eos_token": self.eos_token or self.decode([self.eos_id]), "pad_token": self.pad_token,
                  "unk_token": self.unk_token, "add_bos_token": self.add_bos, "add_eos_token": False,
                  "clean_up_tokenization_spaces": False,
                  "swarr": {"eos_id": self.eos_id, "eos_ids": self.eos_ids}}
        if self.chat_template:
            config["chat_template"] = self.chat_template
        for name, obj in (("tokenizer.json", tj), ("tokenizer_config.json", config)):
            tmp = os.path.join(out_dir, name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(obj, f, ensure_ascii=False, indent=1 if name != "tokenizer.json" else None)
            os.replace(tmp, os.path.join(out_dir, name))
        stale = os.path.join(out_dir, "chat_template.jinja")  # it would override our config's template in HF
        if os.path.isfile(stale):
            os.remove(stale)

    def fingerprint(self):
        """A hash of what decides the ids of a text and the text of an id: the split regex, the normalizer, every
        mergeable token's bytes and id in merge-priority order, every special or added token's id and text. The
        same tokenizer gives the same hash however it was loaded and saved; two vocabularies of one size do not
        (rl.py's --teacher must share the student's tokenizer, not only its size)."""
        id_of = (lambda r: r) if self._id_of_rank is None else self._id_of_rank.__getitem__  # noqa: E731
        h = hashlib.sha256(json.dumps([self.enc._pat_str, self._forms,
                                       sorted((id_of(r), name) for name, r in self.enc._special_tokens.items()),
                                       sorted((a["id"], a["content"], a["special"]) for a in self.added_tokens)],
                                      ensure_ascii=False).encode("utf-8"))
        for token, rank in sorted(self.enc._mergeable_ranks.items(), key=lambda kv: kv[1]):
            h.update(id_of(rank).to_bytes(8, "little") + len(token).to_bytes(4, "little") + token)
        return h.hexdigest()

    def _merges_from_ranks(self):
        """Merges that make HF's BPE behave like tiktoken's rank-ordered merging: every split of a token into two
        lower-ranked tokens, ordered by the token's rank (transformers' tiktoken converter does the same)."""
        ranks = {b: r for b, r in self.enc._mergeable_ranks.items()}
        merges = []
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            splits = [(token[:k], token[k:]) for k in range(1, len(token))
                      if ranks.get(token[:k], rank) < rank and ranks.get(token[k:], rank) < rank]
            merges += sorted(splits, key=lambda s: (ranks[s[0]], ranks[s[1]]))
        spell = lambda b: "".join(BYTE_TO_CHAR[x] for x in b)
        return [(spell(a), spell(b)) for a, b in merges]

    # ---------------------------------------------------------------- encode / decode
    def encode(self, text):
        """Plain text -> ids. Special-token strings stay text; non-special added tokens are matched whole."""
        return self._encode_matching(text, self._plain_added_re)

    def _encode_matching(self, text, added_re):
        """Encode text, turning the added tokens that added_re matches (None: none) into their ids."""
        for form in self._forms:
            text = unicodedata.normalize(form, text)
        if added_re is None:
            return self._encode_ordinary(text)
        ids, start = [], 0
        for m in added_re.finditer(text):
            ids += self._encode_ordinary(text[start:m.start()])
            ids.append(self._added_ids[m.group()])
            start = m.end()
        return ids + self._encode_ordinary(text[start:])

    def _encode_ordinary(self, text):
        if self._missing_re is not None and self._missing_re.search(text.encode("utf-8", "replace")):
            return self._encode_dropping_missing_bytes(text)
        ranks = self.enc.encode_ordinary(text)
        return ranks if self._id_of_rank is None else [self._id_of_rank[r] for r in ranks]

    def _encode_dropping_missing_bytes(self, text):
        import regex  # tiktoken's own dependency; needed only on this rare path
        ranks = []
        for piece in regex.findall(self.enc._pat_str, text):
            data = piece.encode("utf-8", "replace").translate(None, self._missing_bytes)
            if data:
                ranks += self.enc._encode_single_piece(data)
        return ranks if self._id_of_rank is None else [self._id_of_rank[r] for r in ranks]

    def decode(self, ids):
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size or
               (self._rank_of_id is not None and i not in self._rank_of_id)]
        if bad:
            raise ValueError(f"token ids {bad[:5]} are outside this tokenizer's vocabulary ({self.vocab_size} ids)")
        ranks = ids if self._rank_of_id is None else [self._rank_of_id[i] for i in ids]
        try:
            return self.enc.decode(ranks, errors="replace")
        except KeyError as e:  # an id inside the range that no token uses (a hole in the vocabulary)
            raise ValueError(f"{e.args[0]}: an id that no token of this tokenizer uses") from None

    def special_token_id(self, name):
        if name in self._added_ids:
            return self._added_ids[name]
        known = ", ".join(list(self._added_ids)[:12]) + (", ..." if len(self._added_ids) > 12 else "")
        raise ValueError(f"{name!r} is not a special/added token of this tokenizer (it has: {known})")

    def _id_or_none(self, token):
        if token is None:
            return None
        if token in self._added_ids:
            return self._added_ids[token]
        return self.vocab.get(token)

    # ---------------------------------------------------------------- chat
    def render_chat(self, messages, add_generation_prompt=True, **template_kwargs):
        """messages [{"role", "content", ...}] -> ids through the tokenizer's own chat template, identical to
        transformers' apply_chat_template(messages, tokenize=True, add_generation_prompt=..., **template_kwargs)
        (e.g. enable_thinking=False for Qwen3), except that special-token text inside messages stays text (see the
        top of this file); without a template, the "plain" format. A template error is a one-line ValueError."""
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise ValueError(f"each chat message must be a dict with a string 'role' (and 'content'), got {m!r}")
        if not self.chat_template:
            return self._render_plain(messages)
        if not messages:
            raise ValueError("cannot render an empty conversation with a chat template")
        template = compile_chat_template(self.chat_template)

        def mark(obj):  # special tokens in user-given strings get markers, so they are encoded as text below
            if isinstance(obj, str):
                obj = obj.replace(CONTROL_START, "").replace(CONTROL_END, "")  # typed markers go, as in HF
                return self._special_re.sub(lambda m: CONTROL_START + m.group() + CONTROL_END, obj)
            if isinstance(obj, dict):
                return {k: mark(v) for k, v in obj.items()}
            if isinstance(obj, (list, tuple)):
                return [mark(v) for v in obj]
            return obj

        # As transformers: keys whose value is None are dropped; the special tokens are variables (a kwarg wins).
        messages = [{k: v for k, v in m.items() if v is not None} for m in messages]
        variables = {"tools": None, "documents": None, **{name: token for name, token in (
            ("bos_token", self.bos_token), ("eos_token", self.eos_token), ("unk_token", self.unk_token),
            ("pad_token", self.pad_token)) if token is not None}, **mark(template_kwargs)}
        try:
            text = render_bounded(template, messages=mark(messages), add_generation_prompt=add_generation_prompt,
                                  **variables)
        except RenderLimit as e:
            raise ValueError(f"chat template stopped: {e}") from None
        except Exception as e:  # raise_exception(), an undefined name, a type error inside the template...
            raise ValueError(f"chat template failed: {type(e).__name__}: {e}".replace("\n", " ")) from None

        # transformers encodes the rendered text with add_special_tokens=False, which turns every added-token
        # string into its id, but user strings were marked: [text, marked token, text, ...] with None for a marker
        # that the template cut off its token (e.g. by content.split(...)); it still separates the text there.
        # (transformers encodes each piece after a "\n" and strips its ids again, a SentencePiece workaround that
        # gives the same ids for byte-level BPE.)
        markers_re = re.compile(f"{CONTROL_START}({self._special_re.pattern}){CONTROL_END}"
                                f"|[{CONTROL_START}{CONTROL_END}]")
        ids = []
        for k, piece in enumerate(markers_re.split(text)):
            if piece:
                ids += self._encode_matching(piece, None if k % 2 else self._added_re)
        return ids

    def _render_plain(self, messages):
        """The fallback without a template (base models, the byte tokenizer), documented at the top of the file."""
        ids = [self.bos_id] if self.add_bos and self.bos_id is not None else []
        for m in messages:
            content = m.get("content")
            if not isinstance(content, str):
                raise ValueError(f"plain chat format needs string 'content', got {m!r}")
            if m["role"] == "system":
                ids += self.encode(content + "\n\n")
            elif m["role"] == "user":
                ids += self.encode(content + "\n")
            elif m["role"] == "assistant":
                ids += self.encode(content) + [self.eos_id]
            else:
                raise ValueError(f"plain chat format knows roles system/user/assistant, got {m['role']!r}")
        return ids


def _post_processor_adds_bos(post, bos):
    """Llama-3 style tokenizer.json adds BOS through TemplateProcessing rather than tokenizer_config.json."""
    if not post or bos is None:
        return False
    steps = post.get("processors", [post]) if post.get("type") == "Sequence" else [post]
    for step in steps:
        single = step.get("single") or []
        if step.get("type") == "TemplateProcessing" and single and single[0].get("SpecialToken", {}).get("id") == bos:
            return True
    return False
