r"""Byte-level BPE tokenizer on tiktoken, built from a model's own tokenizer files.

    tok = Tokenizer.from_hf_dir("path/to/hf_model")      # tokenizer.json + tokenizer_config.json
    tok = Tokenizer.from_gguf(gguf.GGUFReader(path))     # GGUF metadata (llama.cpp key names)
    tok = Tokenizer.byte_level()                         # 256 bytes + <|endoftext|>, for tiny scratch models
    ids = tok.render_chat([{"role": "user", "content": "What is 2+3?"}])  # ends with the assistant prompt
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
                 enter only through render_chat / special_token_id. Non-special added tokens (e.g. Qwen's
                 <tool_call>) are matched whole in the text, as HF does.
GGUF: tokenizer.ggml.pre picks the split regex the way llama.cpp does (e.g. "smollm" isolates digits, like SmolLM2's
tokenizer.json; transformers' GGUF loader uses GPT-2's regex there and differs on a space run before a digit).
Vocabularies that lack some bytes (SmolLM2 has no token for 21 byte values, e.g. \x04) drop those bytes like HF.

Chat formats (detected from the chat template): "chatml" (<|im_start|>role\ncontent<|im_end|>\n; a default system
turn that the template inserts when the conversation has none is copied from the template text), "llama3"
(<|start_header_id|>role<|end_header_id|>\n\ncontent|trim<|eot_id|>, BOS first; 3.1+ templates get their
"Cutting Knowledge Date" system block), and "plain" for base models and the byte tokenizer:
    [bos if the tokenizer adds one] + "{system}\n\n" (only if given) + "{user}\n" + "{assistant}" + [eos] ...
each turn encoded on its own, so a prompt's ids are always a prefix of the full conversation's ids.

Limitations (stated, not hidden): Jinja templates are not executed (jinja2 is no runtime dependency), so tools,
tool calls and Qwen3's <think> handling are not rendered; added-token flags lstrip/rstrip/single_word are ignored;
tiktoken always returns a whole pre-token piece that is itself in the vocab (HF's ignore_merges=True), which for
BPE-trained vocabularies gives the same ids as HF's merge loop.
"""

import json
import os
import re
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


def _token_name(value):
    """tokenizer_config.json writes special tokens either as strings or as AddedToken dicts."""
    return value.get("content") if isinstance(value, dict) else value


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _unescape_jinja(text):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), text)


def default_system_prompt(template):
    """The system turn a ChatML template inserts when the conversation has none, read from its string literal
    (Qwen2.5: "You are Qwen, created by Alibaba Cloud. ...", SmolLM2: "You are a helpful AI assistant named SmolLM,
    ..."). The concatenation that writes a user-given system message is skipped: it is not a literal."""
    for m in re.finditer(r"<\|im_start\|>system(?:\\n|\n)((?:(?!<\|im_start\|>).)*?)<\|im_end\|>", template, re.S):
        literal = m.group(1)
        if not re.search(r"['\"]\s*\+|\{\{|\}\}|\{%|%\}", literal):
            return _unescape_jinja(literal)
    return None


def detect_chat_format(template):
    if template and "<|im_start|>" in template:
        return "chatml"
    if template and "<|start_header_id|>" in template:
        return "llama3"
    return "plain"


class Tokenizer:
    """A tiktoken.Encoding plus what chat and generation need: eos/bos/pad ids and the chat format.

    vocab: byte-level (GPT-2 alphabet) token string -> id, merges: [(left, right)] in priority order (None: rank
    by id), added_tokens: [{"id", "content", "special"}] as in tokenizer.json, pre_tokenizer/normalizer/
    post_processor: tokenizer.json sections (kept for save()). Usually built by from_hf_dir / from_gguf /
    byte_level rather than directly."""

    def __init__(self, vocab, merges, added_tokens, pre_tokenizer, normalizer=None, post_processor=None,
                 ignore_merges=False, chat_template=None, bos_token=None, eos_token=None, pad_token=None,
                 add_bos=False, chat_format=None, eos_id=None, eos_ids=None, name="swarr"):
        self.vocab, self.merges, self.added_tokens = vocab, merges, added_tokens
        self.pre_tokenizer, self.normalizer, self.post_processor = pre_tokenizer, normalizer, post_processor
        self.ignore_merges, self.chat_template, self.add_bos = ignore_merges, chat_template, add_bos
        self.bos_token, self.eos_token, self.pad_token = bos_token, eos_token, pad_token
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

        # Chat and generation ids.
        self.chat_format = chat_format or detect_chat_format(chat_template)
        self.default_system = None
        if self.chat_format == "chatml" and chat_template:
            self.default_system = default_system_prompt(chat_template)
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
        template = config.get("chat_template")
        if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
            template = next((t["template"] for t in template if t.get("name") == "default"), None)
        jinja = os.path.join(path, "chat_template.jinja")
        if os.path.isfile(jinja):  # recent transformers write the template here instead of into the config
            with open(jinja, encoding="utf-8") as f:
                template = f.read()
        model = tj.get("model") or {}
        kind = model.get("type")
        if kind != "BPE":
            raise ValueError(f"unsupported tokenizer type {kind}: {UNSUPPORTED}")
        if model.get("byte_fallback") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
            raise ValueError(f"unsupported tokenizer type BPE with byte_fallback/subword affixes (sentencepiece "
                             f"style): {UNSUPPORTED}")
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
        added = [{"id": a["id"], "content": a["content"], "special": bool(a.get("special"))}
                 for a in tj.get("added_tokens", [])]
        post = tj.get("post_processor")
        swarr = config.get("swarr") or {}
        add_bos = bool(config.get("add_bos_token")) or _post_processor_adds_bos(post, _token_name(
            config.get("bos_token")))
        return cls(model["vocab"], merges, added, tj.get("pre_tokenizer"), normalizer=tj.get("normalizer"),
                   post_processor=post, ignore_merges=bool(model.get("ignore_merges")), chat_template=template,
                   bos_token=_token_name(config.get("bos_token")), eos_token=_token_name(config.get("eos_token")),
                   pad_token=_token_name(config.get("pad_token")), add_bos=add_bos,
                   chat_format=swarr.get("chat_format"), eos_id=swarr.get("eos_id"), eos_ids=swarr.get("eos_ids"),
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
                   add_bos=add_bos, name=get("general.name", "gguf"))

    @classmethod
    def byte_level(cls):
        """256 byte tokens (id = byte value) + <|endoftext|> (id 256, eos and pad); "plain" chat format."""
        vocab = {BYTE_TO_CHAR[b]: b for b in range(256)}
        added = [{"id": 256, "content": "<|endoftext|>", "special": True}]
        return cls(vocab, None, added, _byte_level(True), eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                   chat_format="plain", name="bytes")

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
                  "unk_token": None, "add_bos_token": self.add_bos, "add_eos_token": False,
                  "clean_up_tokenization_spaces": False,
                  "swarr": {"chat_format": self.chat_format, "eos_id": self.eos_id, "eos_ids": self.eos_ids}}
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
        for form in self._forms:
            text = unicodedata.normalize(form, text)
        if self._plain_added_re is None:
            return self._encode_ordinary(text)
        ids, start = [], 0
        for m in self._plain_added_re.finditer(text):
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
    def render_chat(self, messages, add_generation_prompt=True):
        """messages [{"role", "content"}] -> ids, identical to transformers' apply_chat_template(tokenize=True) for
        ChatML and Llama-3 templates; the "plain" format is documented at the top of this file."""
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise ValueError(f"each chat message must be a dict with string 'role' and 'content', got {m!r}")
        sid = self.special_token_id
        parts = []  # str pieces and int ids; adjacent strs are encoded together, as HF encodes text between specials
        if self.chat_format == "chatml":
            if self.default_system is not None and (not messages or messages[0]["role"] != "system"):
                messages = [{"role": "system", "content": self.default_system}] + list(messages)
            for m in messages:
                parts += [sid("<|im_start|>"), m["role"] + "\n" + m["content"], sid("<|im_end|>"), "\n"]
            if add_generation_prompt:
                parts += [sid("<|im_start|>"), "assistant\n"]
        elif self.chat_format == "llama3":
            parts.append(self.bos_id if self.bos_id is not None else sid("<|begin_of_text|>"))
            header = lambda role: [sid("<|start_header_id|>"), role, sid("<|end_header_id|>")]
            if self.chat_template and "Cutting Knowledge Date" in self.chat_template:
                system = ""
                if messages and messages[0]["role"] == "system":
                    system, messages = messages[0]["content"].strip(), messages[1:]
                parts += header("system") + [self._llama31_dates() + system, sid("<|eot_id|>")]
            for m in messages:
                parts += header(m["role"]) + ["\n\n" + m["content"].strip(), sid("<|eot_id|>")]
            if add_generation_prompt:
                parts += header("assistant") + ["\n\n"]
        else:
            ids = [self.bos_id] if self.add_bos and self.bos_id is not None else []
            for m in messages:
                if m["role"] == "system":
                    ids += self.encode(m["content"] + "\n\n")
                elif m["role"] == "user":
                    ids += self.encode(m["content"] + "\n")
                elif m["role"] == "assistant":
                    ids += self.encode(m["content"]) + [self.eos_id]
                else:
                    raise ValueError(f"plain chat format knows roles system/user/assistant, got {m['role']!r}")
            return ids
        ids, text = [], ""
        for p in parts + [None]:
            if isinstance(p, str):
                text += p
                continue
            if text:
                ids += self.encode(text)
                text = ""
            if p is not None:
                ids.append(p)
        return ids

    def _llama31_dates(self):
        """"Cutting Knowledge Date: ...\\nToday Date: ...\\n\\n" as Llama-3.1+ templates write it."""
        t = self.chat_template
        known = re.search(r"Cutting Knowledge Date: (.*?)(?:\\n|\n)", t)
        today = re.search(r"set date_string = [\"']([^\"']+)[\"']", t)
        date = time.strftime("%d %b %Y") if "strftime_now" in t or not today else today.group(1)
        return f"\n\nCutting Knowledge Date: {known.group(1)}\nToday Date: {date}\n\n"


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
