"""Downloads from a local mirror (127.0.0.1): verified before use, resumed after a cut, refused when corrupt,
one line of guidance per file when the network is unreachable."""
import pytest
from mirror import closed_port_url, make_release, serve

from data.fetch import FetchError, Inputs, Manifest

FILES = {"casrel/WebNLG/test_triples.json": "x" * 200_000, "rin/webnlg/test.json": '{"sentText": ["é"]}\n'}
BIG = "casrel/WebNLG/test_triples.json"


@pytest.fixture
def release(tmp_path):
    return make_release(tmp_path, FILES)


def inputs(release, cache, base_url):
    """Inputs as on a machine without --source and without ../shared."""
    return Inputs(Manifest.load(release.manifest), None, cache, base_url)


def test_a_download_is_verified_and_cached(release, tmp_path):
    with serve(release.mirror) as server:
        found = inputs(release, tmp_path / "cache", server.base_url).gather(list(FILES))
    for relative, content in FILES.items():
        assert found.paths[relative] == tmp_path / "cache" / relative
        assert found.paths[relative].read_text(encoding="utf-8") == content
        assert found.origins[relative] == server.base_url + release.url_path(relative)
    assert not list((tmp_path / "cache").rglob("*.part"))
    # cached files are used (and verified again) without the network
    again = inputs(release, tmp_path / "cache", closed_port_url()).gather(list(FILES))
    assert again.paths == found.paths


def test_a_corrupted_byte_is_refused_and_nothing_is_kept(release, tmp_path):
    mirror_file = release.mirror_file(BIG)
    mirror_file.write_bytes(b"y" + mirror_file.read_bytes()[1:])
    with serve(release.mirror) as server, pytest.raises(FetchError) as error:
        inputs(release, tmp_path / "cache", server.base_url).gather([BIG])
    assert "differs from the published" in str(error.value) and "discarded" in str(error.value)
    assert str(error.value).count("\n") == 0
    assert not (tmp_path / "cache" / BIG).exists()
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_an_interrupted_download_resumes_with_range(release, tmp_path):
    with serve(release.mirror) as server:
        server.cut[release.url_path(BIG)] = 70_000  # the connection drops after 70 kB
        found = inputs(release, tmp_path / "cache", server.base_url).gather([BIG])
    assert found.paths[BIG].read_text() == FILES[BIG]
    assert server.requests == [(release.url_path(BIG), None), (release.url_path(BIG), "bytes=70000-")]


def test_a_part_file_from_an_earlier_run_is_resumed(release, tmp_path):
    part = tmp_path / "cache" / (BIG + ".part")
    part.parent.mkdir(parents=True)
    part.write_text(FILES[BIG][:123_456])
    with serve(release.mirror) as server:
        found = inputs(release, tmp_path / "cache", server.base_url).gather([BIG])
    assert found.paths[BIG].read_text() == FILES[BIG] and not part.exists()
    assert server.requests == [(release.url_path(BIG), "bytes=123456-")]


def test_a_server_without_range_support_restarts_the_file(release, tmp_path):
    part = tmp_path / "cache" / (BIG + ".part")
    part.parent.mkdir(parents=True)
    part.write_text("garbage that a resume would keep")
    with serve(release.mirror, honour_range=False) as server:
        found = inputs(release, tmp_path / "cache", server.base_url).gather([BIG])
    assert found.paths[BIG].read_text() == FILES[BIG]


def test_a_download_cut_at_every_try_keeps_its_part_for_the_next_run(release, tmp_path, monkeypatch):
    monkeypatch.setattr("data.fetch.ATTEMPTS", 2)
    with serve(release.mirror) as server:
        server.cut_every[release.url_path(BIG)] = 1000
        with pytest.raises(FetchError, match="run again to resume"):
            inputs(release, tmp_path / "cache", server.base_url).gather([BIG])
        assert (tmp_path / "cache" / (BIG + ".part")).stat().st_size == 2000
        assert not (tmp_path / "cache" / BIG).exists()
        server.cut_every.clear()
        found = inputs(release, tmp_path / "cache", server.base_url).gather([BIG])
    assert found.paths[BIG].read_text() == FILES[BIG]
    assert server.requests[-1] == (release.url_path(BIG), "bytes=2000-")


def test_an_archive_download_cut_off_resumes_on_the_next_run(release, tmp_path, monkeypatch):
    """--source URL of an archive: a download cut at every try keeps its .part, which the next run resumes (the
    message says so), rather than starting over."""
    import tarfile

    with tarfile.open(release.mirror / "release.tar.gz", "w:gz") as bundle:
        bundle.add(release.source, arcname="release")
    monkeypatch.setattr("data.fetch.ATTEMPTS", 2)
    with serve(release.mirror) as server:
        url = f"{server.base_url}/release.tar.gz"
        server.cut_every["/release.tar.gz"] = 100
        with pytest.raises(FetchError, match="run again to resume"):
            Inputs(Manifest.load(release.manifest), url, tmp_path / "cache").gather(list(FILES))
        server.cut_every.clear()
        found = Inputs(Manifest.load(release.manifest), url, tmp_path / "cache").gather(list(FILES))
    assert sorted(found.paths) == sorted(FILES)
    assert server.requests[-1] == ("/release.tar.gz", "bytes=200-")


def test_offline_one_line_per_file_with_url_place_and_source_flag(release, tmp_path):
    base = closed_port_url()
    with pytest.raises(FetchError) as error:
        inputs(release, tmp_path / "cache", base).gather(list(FILES))
    lines = str(error.value).splitlines()
    assert len(lines) == len(FILES)
    for relative, line in zip(FILES, lines, strict=True):
        assert line.startswith(base + release.url_path(relative) + ": ")
        assert f"download it by hand to {tmp_path / 'cache' / relative}" in line and "--source DIR" in line
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(("source", "what"), [("release.tar.gz", "archive by hand and pass the file"),
                                              ("folder/", "folder by hand and pass it as --source DIR")])
def test_an_unreachable_source_url_says_what_to_do(release, tmp_path, source, what):
    """--source URL (an archive or a folder) that cannot be reached: the reason, then what to do instead."""
    url = f"{closed_port_url()}/{source}"
    with pytest.raises(FetchError) as error:
        Inputs(Manifest.load(release.manifest), url, tmp_path / "cache").gather(list(FILES))
    first = str(error.value).splitlines()[0]
    assert first.startswith(url) and f"check the URL, or download the {what}" in first


def test_not_found_on_the_mirror_is_one_line(release, tmp_path):
    release.mirror_file(BIG).unlink()
    with serve(release.mirror) as server, pytest.raises(FetchError, match="HTTP 404"):
        inputs(release, tmp_path / "cache", server.base_url).gather([BIG])


def test_a_cached_file_changed_by_hand_is_refused(release, tmp_path):
    cached = tmp_path / "cache" / BIG
    cached.parent.mkdir(parents=True)
    cached.write_text("not it")
    with pytest.raises(FetchError, match=f"{cached}: size 6 differs.*delete it to download it again"):
        inputs(release, tmp_path / "cache", closed_port_url()).gather([BIG])


def test_a_file_outside_the_manifest_is_refused(release, tmp_path):
    with pytest.raises(FetchError, match="nosuch.json: not in"):
        inputs(release, tmp_path / "cache", closed_port_url()).gather(["nosuch.json"])
