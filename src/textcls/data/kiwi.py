"""Korean morphemes for the word models: kiwipiepy's analyser behind the tokenizer interface.

``--tokenizer kiwi`` splits text into morphemes (``먹었다`` → ``먹`` ``었`` ``다``), optionally
tagged (``먹/VV``) and without the tags ``stop_tags`` names (``J,E``: particles and endings).
Korean words carry their particles and endings (``학교에``, ``학교에서``, ``학교는``), so a word
vocabulary splits one noun over many entries; morphemes give it one.

One ``Kiwi`` per process, built on first use (it loads its model for a few seconds) and analysing
lists of texts on all the process's cores. Non-Korean text stays: Latin words (``SL``), numbers
(``SN``), Hanja (``SH``), emoji (``W_EMOJI``), URLs (``W_URL``), other symbols (``SW``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import unicodedata
from collections.abc import Sequence
from typing import Any

from textcls.config import TokenizerConfig
from textcls.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)

# Kiwi's part-of-speech tags (kiwipiepy's documentation, "품사 태그"): a stop tag must begin one.
KIWI_TAGS = (
    *("NNG", "NNP", "NNB", "NR", "NP", "VV", "VA", "VX", "VCP", "VCN", "MM", "MAG", "MAJ", "IC"),
    *("JKS", "JKC", "JKG", "JKO", "JKB", "JKV", "JKQ", "JX", "JC", "EP", "EF", "EC", "ETN", "ETM"),
    *("XPN", "XSN", "XSV", "XSA", "XSM", "XR", "SF", "SP", "SS", "SSO", "SSC", "SE", "SO", "SW"),
    *("SL", "SH", "SN", "SB", "UN", "W_URL", "W_EMAIL", "W_HASHTAG", "W_MENTION", "W_SERIAL"),
    *("W_EMOJI", "Z_CODA", "Z_SIOT", "USER0", "USER1", "USER2", "USER3", "USER4"),
    *("VV-I", "VA-I", "VX-I", "XSA-I", "VV-R", "VA-R", "VX-R", "XSA-R"),  # irregular conjugations
)
LOG_BATCH = 10_000  # batches of more texts log their speed at INFO
MEMO_BATCH = 1_000  # the last batch of at least this many texts is remembered (training reads it twice)

# Hangul compatibility jamo (ㄱ..ㅣ, as typed: ㅋㅋ, ㅠㅠ) and their half-width forms. NFKC maps them
# to conjoining jamo, which then compose: 'ㅋㅠ' would become the syllable '큐' and 'ㅋㅋ' a noun.
_JAMO = re.compile("[\u3131-\u318e\uffa0-\uffdc]+")
_SURROGATE = re.compile("[\ud800-\udfff]")  # a lone surrogate: Kiwi cannot encode it
_INVISIBLE = frozenset(("Cc", "Cf", "Zs", "Zl", "Zp"))


class KiwiTokenizer:
    """Korean morphemes by kiwipiepy (``pip install 'textcls[korean]'``).

    The text is Unicode-normalised (``normalize``; typed jamo such as ``ㅋㅋ`` kept as they are)
    and analysed; each morpheme is its form, lower-cased (``lowercase``: Latin letters), with
    ``/TAG`` (``pos_tags``), unless its tag starts with one of ``stop_tags``. A form of several
    words (a title from Kiwi's dictionary) joins them with ``_``. ``kiwi_normalize_coda`` reads a
    consonant split off a syllable as a coda (``먹었엌ㅋㅋ`` → ``먹 었 어 ㅋㅋㅋ``).
    Empty and blank texts give no tokens.

    >>> KiwiTokenizer(TokenizerConfig(engine="kiwi")).tokenize("학교에 갔다")  # doctest: +SKIP
    ['학교', '에', '가', '었', '다']
    """

    def __init__(self, config: TokenizerConfig) -> None:
        _import_kiwipiepy()  # a missing package is reported when the model is built or loaded
        self.config = config
        self.stop_tags = check_stop_tags(config.stop_tags)
        self._normalize = config.normalize if config.normalize != "none" else None
        self._options = {"normalize_coda": config.kiwi_normalize_coda, "compatible_jamo": True}
        self._key = (config.normalize, config.lowercase, config.pos_tags, self.stop_tags, self._options)

    def tokenize(self, text: str) -> list[str]:
        text = self.prepare(text)
        if not text or text.isspace():
            return []
        return self._convert(shared_kiwi().tokenize(text, **self._options))

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """Many texts at once: Kiwi analyses them on all cores, in order."""
        remembered = _memo.get(self._key, texts)
        if remembered is not None:
            return remembered
        started = time.perf_counter()
        prepared = [self.prepare(text) for text in texts]
        todo = [i for i, text in enumerate(prepared) if text and not text.isspace()]
        results: list[list[str]] = [[] for _ in prepared]
        if todo:
            kiwi = shared_kiwi()
            analysed = kiwi.tokenize([prepared[i] for i in todo], **self._options)
            for i, tokens in zip(todo, analysed, strict=True):
                results[i] = self._convert(tokens)
        if len(texts) > LOG_BATCH:
            seconds = max(time.perf_counter() - started, 1e-9)
            count = sum(map(len, results))
            log.info(
                "kiwi: %d texts, %d tokens in %.1f s (%.0f tokens/s, %.0f texts/s, %d threads)",
                len(texts),
                count,
                seconds,
                count / seconds,
                len(texts) / seconds,
                workers(),
            )
        _memo.put(self._key, texts, results)
        return results

    def prepare(self, text: str) -> str:
        """The text Kiwi reads: Unicode-normalised, typed jamo kept, lone surrogates replaced."""
        if text.isascii():
            return text
        if _SURROGATE.search(text):
            text = _SURROGATE.sub("\ufffd", text)
        if self._normalize == "NFKC":
            return normalize_keeping_jamo(text)
        if self._normalize:
            return unicodedata.normalize(self._normalize, text)
        return text

    def _convert(self, tokens: Any) -> list[str]:
        stop, lowercase, tagged = self.stop_tags, self.config.lowercase, self.config.pos_tags
        out: list[str] = []
        for token in tokens:
            tag = token.tag
            if stop and tag.startswith(stop):
                continue
            form = token.form
            if " " in form or not form.isprintable():  # several words; a control or format character
                if all(unicodedata.category(c) in _INVISIBLE for c in form):
                    continue  # a zero-width space, a BOM, a NUL: nothing to read
                form = "_".join(form.split())
            if lowercase:
                form = form.lower()
            out.append(f"{form}/{tag}" if tagged else form)
        return out


def check_stop_tags(tags: Sequence[str]) -> tuple[str, ...]:
    """The stop tags, upper-cased; each must begin one of Kiwi's tags (``J``, ``JK``, ``SF``...)."""
    cleaned = tuple(tag.strip().upper() for tag in tags)
    for tag in cleaned:
        if not tag or not any(known.startswith(tag) for known in KIWI_TAGS):
            raise ConfigError(
                f"stop tag '{tag}' begins no Kiwi part-of-speech tag; use prefixes such as J "
                "(particles), E (endings), S (symbols, also SL Latin words and SN numbers), "
                "SF,SP,SS,SE,SO,SW (punctuation and other symbols), XS (suffixes)"
            )
    return cleaned


def normalize_keeping_jamo(text: str) -> str:
    """NFKC, except Hangul compatibility jamo (``ㅋㅋ``, ``ㅠㅠ``), which stay as typed."""
    if unicodedata.is_normalized("NFKC", text):
        return text
    if not _JAMO.search(text):
        return unicodedata.normalize("NFKC", text)
    parts, last = [], 0
    for match in _JAMO.finditer(text):
        parts += [unicodedata.normalize("NFKC", text[last : match.start()]), match.group()]
        last = match.end()
    parts.append(unicodedata.normalize("NFKC", text[last:]))
    return "".join(parts)


# ------------------------------------------------------------------ the analyser, one per process
_lock = threading.Lock()
_kiwi: Any = None
_kiwi_pid: int | None = None


def _import_kiwipiepy() -> Any:
    try:
        import kiwipiepy
    except ImportError:
        raise MissingDependencyError("kiwipiepy", "korean", "--tokenizer kiwi (Korean morphemes)") from None
    return kiwipiepy


def workers() -> int:
    """The cores this process may use (Kiwi's analysis threads)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def shared_kiwi() -> Any:
    """This process's ``Kiwi`` (built on first use; a forked child builds its own)."""
    global _kiwi, _kiwi_pid
    pid = os.getpid()
    if _kiwi is not None and _kiwi_pid == pid:
        return _kiwi
    with _lock:
        if _kiwi is None or _kiwi_pid != pid:
            kiwipiepy = _import_kiwipiepy()
            started = time.perf_counter()
            kiwi = kiwipiepy.Kiwi(num_workers=workers())
            kiwi.tokenize("")  # Kiwi finishes loading on its first analysis
            log.debug(
                "kiwi %s loaded in %.1f s, %d threads",
                kiwipiepy.__version__,
                time.perf_counter() - started,
                workers(),
            )
            _kiwi, _kiwi_pid = kiwi, pid
    return _kiwi


def _after_fork() -> None:
    global _lock, _kiwi, _kiwi_pid
    _lock, _kiwi, _kiwi_pid = threading.Lock(), None, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class _LastBatch:
    """The last large batch's tokens: training tokenizes its texts to build the vocabulary, then
    the featurizer encodes the same texts; the second reading costs nothing. Copies are handed
    out, so a caller that changes its lists changes nothing here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry: tuple[Any, tuple[str, ...], list[tuple[str, ...]]] | None = None

    def get(self, key: Any, texts: Sequence[str]) -> list[list[str]] | None:
        if len(texts) < MEMO_BATCH:
            return None
        with self._lock:
            entry = self._entry
        if entry is None or entry[0] != key or len(entry[1]) != len(texts) or entry[1] != tuple(texts):
            return None
        return [list(tokens) for tokens in entry[2]]

    def put(self, key: Any, texts: Sequence[str], results: list[list[str]]) -> None:
        if len(texts) < MEMO_BATCH:
            return
        with self._lock:
            self._entry = (key, tuple(texts), [tuple(tokens) for tokens in results])

    def clear(self) -> None:
        with self._lock:
            self._entry = None


_memo = _LastBatch()
