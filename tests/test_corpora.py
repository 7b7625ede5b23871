"""benchmarks/bench_corpora.py: the real corpus built from fake "installed" files under a tmp root (ids, min words,
dedup, long files split, round-robin cap, cache), and the generated corpora unchanged by the move."""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def corpora():
    sys.path.insert(0, str(BENCHMARKS))  # bench_corpora and data_provenance, as the benchmark scripts import them
    import bench_corpora
    return bench_corpora


def words(k: int, stem: str = "word") -> str:
    return " ".join(f"{stem}{i}" for i in range(k))


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    lic = r / "usr/share/common-licenses"
    lic.mkdir(parents=True)
    (lic / "A-1.0").write_text("License A. You don't have to. " + words(60, "lic"))
    (lic / "B-1.0").write_text("License A. You don't have to. " + words(60, "lic"))  # same text: deduplicated
    (lic / "Short").write_text(words(10))  # under 50 words: left out
    for pkg, text in [("alpha", "Copyright 2021 José Müller. " + words(55, "c")), ("beta", "x " + words(70, "b"))]:
        (r / "usr/share/doc" / pkg).mkdir(parents=True)
        (r / "usr/share/doc" / pkg / "copyright").write_bytes(text.encode("latin-1" if pkg == "alpha" else "utf-8"))
    long_log = "\n".join(f"  * entry {i}: " + words(20, f"e{i}_") for i in range(60))  # ~1,300 words: 3 parts
    (r / "usr/share/doc/alpha/changelog.Debian.gz").write_bytes(gzip.compress(long_log.encode()))
    man = r / "usr/share/man/de/man1"
    man.mkdir(parents=True)
    page = ".\\\" comment\n.TH FOO 1\n.SH BESCHREIBUNG\n\\fBfoo\\fP prüft die Größe. " + words(60, "wort") + "\n"
    (man / "foo.1.gz").write_bytes(gzip.compress(page.encode()))
    return r


def test_real_corpus_from_installed_files(corpora, root: Path, tmp_path: Path, monkeypatch) -> None:
    docs, summary = corpora.real_corpus_summary(cache_dir=tmp_path / "cache", root=root, quiet=True)
    ids = [d["id"] for d in docs]
    assert len(ids) == len(set(ids))
    assert "usr/share/common-licenses/A-1.0" in ids and "usr/share/common-licenses/B-1.0" not in ids  # dedup
    assert not any("Short" in i for i in ids)
    assert all(len(d["text"].split()) >= 50 for d in docs)
    assert [i for i in ids if "changelog" in i] == [f"usr/share/doc/alpha/changelog.Debian.gz#{k}" for k in range(3)]
    assert next(d for d in docs if d["id"].endswith("alpha/copyright"))["text"].startswith("Copyright 2021 José")
    man = next(d for d in docs if d["source"] == "man-i18n")
    assert man["id"] == "usr/share/man/de/man1/foo.1.gz" and "foo prüft die Größe" in man["text"]
    assert "comment" not in man["text"] and "\\f" not in man["text"]
    assert summary["missing_sources"] == ["python-doc"]
    assert summary["sources"] == {"common-licenses": 1, "copyright": 2, "changelog": 3, "man-i18n": 1}
    assert summary["share_digits"] > 0 and summary["share_apostrophes"] > 0 and summary["share_non_ascii_letters"] > 0
    assert ids[:4] == ["usr/share/common-licenses/A-1.0", "usr/share/doc/alpha/copyright",  # one source each in turn
                       "usr/share/doc/alpha/changelog.Debian.gz#0", "usr/share/man/de/man1/foo.1.gz"]

    # the second call reads the cache: nothing is extracted again, and the documents are the same
    assert list((tmp_path / "cache").glob("real-*.jsonl.gz")) == [Path(summary["cache"])]
    monkeypatch.setattr(corpora, "_documents", lambda *a: pytest.fail("rebuilt instead of read from the cache"))
    assert corpora.real_corpus(cache_dir=tmp_path / "cache", root=root, quiet=True) == docs
    # a capped corpus is the whole one's first documents, read from the whole one's cache too
    assert corpora.real_corpus(cache_dir=tmp_path / "cache", root=root, max_docs=3, quiet=True) == docs[:3]
    monkeypatch.undo()

    # stable: built again elsewhere, the same ids and texts; capped and built afresh, the same prefix
    assert corpora.real_corpus(cache_dir=tmp_path / "other", root=root, quiet=True) == docs
    assert corpora.real_corpus(cache_dir=tmp_path / "capped", root=root, max_docs=3, quiet=True) == docs[:3]
    # a changed source file list is another corpus (another cache file)
    (root / "usr/share/doc/beta/copyright").unlink()
    again = corpora.real_corpus(cache_dir=tmp_path / "cache", root=root, quiet=True)
    assert [d["id"] for d in again] == [i for i in ids if "beta" not in i]
    assert len(list((tmp_path / "cache").glob("real-*.jsonl.gz"))) == 2


def test_python_doc_html_is_extracted(corpora, tmp_path: Path) -> None:
    html_dir = tmp_path / "root/usr/share/doc/python3/html/library"
    html_dir.mkdir(parents=True)
    body = " ".join(f"<p>The os module's function number {i} doesn't block; it returns {i}.</p>" for i in range(12))
    (html_dir / "os.html").write_text(f"<html><head><title>os</title></head><body><main>{body}</main></body></html>")
    docs = corpora.real_corpus(cache_dir=tmp_path / "cache", root=tmp_path / "root", quiet=True)
    assert [(d["id"], d["source"]) for d in docs] == [("usr/share/doc/python3/html/library/os.html", "python-doc")]
    assert "doesn't block" in docs[0]["text"] and "<p>" not in docs[0]["text"]


def test_generated_corpora_unchanged(corpora, tmp_path: Path) -> None:
    """The generated corpora are the ones the recorded figures were measured on (digests taken with the
    generators where they lived before: data_provenance.make_corpus, decont_vs_datatrove.make_data)."""
    corpora.generated_corpus(tmp_path / "c", 60, 2)
    written = b"".join((tmp_path / "c" / name).read_bytes() for name in ("part-000.jsonl", "part-001.jsonl"))
    assert hashlib.sha256(written).hexdigest() == "1f9aefeda255985b6a5f48422723ac668f6834b2a77c635891674560cfea6dbe"
    docs = [json.loads(line)["text"] for line in written.decode().splitlines()]
    assert len(docs) == 60 and any("Buy now" in d for d in docs) and len(set(docs)) > 30

    from datatrove.utils.word_tokenizers import load_word_tokenizer
    items, docs, planted = corpora.decont_corpus(40, 60, 0.2, 10, 300, 13, 3, load_word_tokenizer("en"))
    digest = hashlib.sha256(repr((items, [(d.id, d.text) for d in docs], sorted(planted))).encode()).hexdigest()
    # computed with decont_vs_datatrove.make_data before its generator moved to bench_corpora.py
    assert digest == "e157f69c7f8a9abe592b94e219ed60b961074ac232605b93052d730e274b00f5"
