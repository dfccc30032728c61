"""The emulator's synthetic composition media: real MP4 (ISO BMFF) and WebM (EBML) structure at any size."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from twilio_video_emulator.media import MediaFile, MediaSpec, build_media

CREATED = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
TRACK_COMBINATIONS = [(True, False), (False, True), (True, True)]


def spec(container: str = "mp4", **changes: object) -> MediaSpec:
    base = MediaSpec(
        container=container,
        width=640,
        height=480,
        duration=7,
        video=True,
        audio=True,
        seed="CJ0123456789abcdef0123456789abcdef",
        created=CREATED,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- ISO BMFF parser

MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf"}
SAMPLE_ENTRY_HEADER = {b"avc1": 78, b"mp4a": 28}


@dataclass
class Box:
    kind: bytes
    start: int
    size: int
    header: int
    children: list[Box] = field(default_factory=list)

    @property
    def payload_start(self) -> int:
        return self.start + self.header

    def find(self, *path: bytes) -> Box:
        box = self
        for kind in path:
            matches = [child for child in box.children if child.kind == kind]
            assert matches, f"no {kind!r} in {box.kind!r}"
            box = matches[0]
        return box

    def all(self, kind: bytes) -> list[Box]:
        return [child for child in self.children if child.kind == kind]


def parse_boxes(data: bytes, start: int, end: int) -> list[Box]:
    boxes = []
    offset = start
    while offset < end:
        assert end - offset >= 8, f"truncated box header at {offset}"
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        assert size >= header, f"bad size {size} for {kind!r} at {offset}"
        assert offset + size <= end, f"{kind!r} at {offset} overruns its parent"
        box = Box(kind, offset, size, header)
        if kind in MP4_CONTAINERS:
            box.children = parse_boxes(data, offset + header, offset + size)
        elif kind == b"stsd":
            box.children = parse_boxes(data, offset + header + 8, offset + size)
        elif kind in SAMPLE_ENTRY_HEADER:
            box.children = parse_boxes(data, offset + header + SAMPLE_ENTRY_HEADER[kind], offset + size)
        boxes.append(box)
        offset += size
    assert offset == end
    return boxes


def nal_types(sample: bytes) -> list[int]:
    types = []
    offset = 0
    while offset < len(sample):
        (length,) = struct.unpack_from(">I", sample, offset)
        assert length > 0 and offset + 4 + length <= len(sample)
        types.append(sample[offset + 4] & 0x1F)
        offset += 4 + length
    return types


def check_mp4(data: bytes, media_spec: MediaSpec) -> list[Box]:
    top = parse_boxes(data, 0, len(data))
    kinds = [box.kind for box in top]
    assert kinds[:3] == [b"ftyp", b"moov", b"mdat"], kinds
    assert kinds[3:] in ([], [b"free"])
    assert data[8:12] == b"isom"
    moov, mdat = top[1], top[2]
    mvhd = moov.find(b"mvhd")
    timescale, duration = struct.unpack_from(">II", data, mvhd.payload_start + 12)
    assert duration / timescale == media_spec.duration
    traks = moov.all(b"trak")
    handlers = []
    data_end = mdat.payload_start
    for trak in traks:
        hdlr = trak.find(b"mdia", b"hdlr")
        handler = data[hdlr.payload_start + 8 : hdlr.payload_start + 12]
        handlers.append(handler)
        stbl = trak.find(b"mdia", b"minf", b"stbl")
        for required in (b"stsd", b"stts", b"stsc", b"stsz"):
            stbl.find(required)
        stsz = stbl.find(b"stsz")
        sample_size, count = struct.unpack_from(">II", data, stsz.payload_start + 4)
        sizes = (
            list(struct.unpack_from(f">{count}I", data, stsz.payload_start + 12))
            if sample_size == 0
            else [sample_size] * count
        )
        stco = stbl.find(b"stco")
        entries, chunk_offset = struct.unpack_from(">II", data, stco.payload_start + 4)
        assert entries == 1
        assert chunk_offset == data_end, "track data must follow the previous track in mdat"
        data_end = chunk_offset + sum(sizes)
        mdhd = trak.find(b"mdia", b"mdhd")
        media_timescale, media_duration = struct.unpack_from(">II", data, mdhd.payload_start + 12)
        assert media_duration / media_timescale >= media_spec.duration
        entry = stbl.find(b"stsd").children[0]
        if handler == b"vide":
            assert entry.kind == b"avc1"
            width, height = struct.unpack_from(">HH", data, entry.payload_start + 24)
            assert (width, height) == (
                media_spec.width + media_spec.width % 2,
                media_spec.height + media_spec.height % 2,
            )
            avcc = entry.find(b"avcC")
            assert data[avcc.payload_start + 1] == 66  # baseline profile
            assert count == media_spec.duration
            first = data[chunk_offset : chunk_offset + sizes[0]]
            assert nal_types(first) == [6, 5]  # SEI naming the file, then the IDR picture
            if count > 1:
                second = data[chunk_offset + sizes[0] : chunk_offset + sizes[0] + sizes[1]]
                assert nal_types(second) == [1]
        else:
            assert handler == b"soun"
            assert entry.kind == b"mp4a"
            entry.find(b"esds")
    assert data_end == mdat.start + mdat.size
    expected = ([b"vide"] if media_spec.video or not media_spec.audio else []) + (
        [b"soun"] if media_spec.audio else []
    )
    assert handlers == expected
    return top


# ----------------------------------------------------------------------------------------- EBML parser

EBML_MASTERS = {0x1A45DFA3, 0x18538067, 0x1549A966, 0x1654AE6B, 0xAE, 0xE0, 0xE1, 0x1F43B675}


@dataclass
class Element:
    element_id: int
    start: int
    data_start: int
    size: int
    children: list[Element] = field(default_factory=list)

    def find(self, element_id: int) -> Element:
        return next(child for child in self.children if child.element_id == element_id)

    def all(self, element_id: int) -> list[Element]:
        return [child for child in self.children if child.element_id == element_id]


def read_vint(data: bytes, offset: int, keep_marker: bool) -> tuple[int, int]:
    first = data[offset]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    assert length <= 8, f"invalid vint at {offset}"
    value = int.from_bytes(data[offset : offset + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    return value, length


def parse_ebml(data: bytes, start: int, end: int) -> list[Element]:
    elements = []
    offset = start
    while offset < end:
        element_id, id_length = read_vint(data, offset, keep_marker=True)
        size, size_length = read_vint(data, offset + id_length, keep_marker=False)
        data_start = offset + id_length + size_length
        assert data_start + size <= end, f"element {element_id:#x} at {offset} overruns its parent"
        element = Element(element_id, offset, data_start, size)
        if element_id in EBML_MASTERS:
            element.children = parse_ebml(data, data_start, data_start + size)
        elements.append(element)
        offset = data_start + size
    assert offset == end
    return elements


def uint(data: bytes, element: Element) -> int:
    return int.from_bytes(data[element.data_start : element.data_start + element.size], "big")


def text(data: bytes, element: Element) -> str:
    return data[element.data_start : element.data_start + element.size].decode()


def check_webm(data: bytes, media_spec: MediaSpec) -> list[Element]:
    top = parse_ebml(data, 0, len(data))
    assert [e.element_id for e in top] == [0x1A45DFA3, 0x18538067]
    header, segment = top
    assert text(data, header.find(0x4282)) == "webm"
    assert segment.data_start + segment.size == len(data)
    ids = [child.element_id for child in segment.children]
    assert ids[:2] == [0x1549A966, 0x1654AE6B]
    info = segment.find(0x1549A966)
    assert uint(data, info.find(0x2AD7B1)) == 1_000_000
    (duration_ms,) = struct.unpack(
        ">d", data[info.find(0x4489).data_start : info.find(0x4489).data_start + 8]
    )
    assert duration_ms == media_spec.duration * 1000
    entries = segment.find(0x1654AE6B).all(0xAE)
    codecs = [text(data, entry.find(0x86)) for entry in entries]
    expected = (["V_VP8"] if media_spec.video or not media_spec.audio else []) + (
        ["A_OPUS"] if media_spec.audio else []
    )
    assert codecs == expected
    clusters = segment.all(0x1F43B675)
    assert len(clusters) == media_spec.duration
    for second, cluster in enumerate(clusters):
        assert uint(data, cluster.find(0xE7)) == second * 1000
        tracks = {read_vint(data, block.data_start, keep_marker=False)[0] for block in cluster.all(0xA3)}
        assert tracks == set(range(1, len(entries) + 1))
    assert set(ids[2:]) <= {0x1F43B675, 0xEC}
    if 0xEC in ids:
        assert ids[-1] == 0xEC
    return top


def check(media: MediaFile, media_spec: MediaSpec) -> bytes:
    data = media.read_all()
    assert len(data) == media.size
    if media_spec.container == "mp4":
        check_mp4(data, media_spec)
    else:
        check_webm(data, media_spec)
    return data


# --------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("container", ["mp4", "webm"])
@pytest.mark.parametrize(("video", "audio"), TRACK_COMBINATIONS)
@pytest.mark.parametrize("duration", [1, 7, 3600])
def test_minimal_files_are_well_formed(container: str, video: bool, audio: bool, duration: int) -> None:
    media_spec = spec(container, video=video, audio=audio, duration=duration)
    media = build_media(media_spec)
    assert media.content_type == f"video/{container}"
    check(media, media_spec)


@pytest.mark.parametrize("container", ["mp4", "webm"])
def test_every_target_size_is_hit_exactly(container: str) -> None:
    minimum = build_media(spec(container)).size
    for extra in [*range(1, 20), 1000, 200_000]:
        media_spec = spec(container, target_size=minimum + extra)
        media = build_media(media_spec)
        assert media.size == minimum + extra
        check(media, media_spec)


@pytest.mark.parametrize("container", ["mp4", "webm"])
def test_target_below_minimum_gives_the_minimal_file(container: str) -> None:
    minimum = build_media(spec(container)).size
    assert build_media(spec(container, target_size=10)).size == minimum


@pytest.mark.parametrize("container", ["mp4", "webm"])
def test_bytes_are_deterministic_per_seed(container: str) -> None:
    first = build_media(spec(container, target_size=50_000)).read_all()
    again = build_media(spec(container, target_size=50_000)).read_all()
    other = build_media(spec(container, target_size=50_000, seed="CJ" + "f" * 32)).read_all()
    assert first == again
    assert first != other
    assert len(first) == len(other)


@pytest.mark.parametrize("container", ["mp4", "webm"])
def test_ranges_and_chunks_agree_with_the_whole_file(container: str) -> None:
    media = build_media(spec(container, duration=40, target_size=300_001))
    whole = media.read_all()
    for start, end in [(0, 1), (0, 100), (5, 5000), (len(whole) - 10, len(whole)), (1234, 299_999)]:
        assert b"".join(media.iter_bytes(start, end, chunk_size=777)) == whole[start:end]
    chunks = list(media.iter_bytes(chunk_size=4096))
    assert all(0 < len(chunk) <= 4096 for chunk in chunks)
    assert b"".join(chunks) == whole


@pytest.mark.parametrize("container", ["mp4", "webm"])
def test_large_files_stream_in_bounded_chunks(container: str) -> None:
    size = 64 * 1024 * 1024 + 3
    media = build_media(spec(container, target_size=size))
    assert media.size == size
    total = 0
    largest = 0
    for chunk in media.iter_bytes(chunk_size=256 * 1024):
        total += len(chunk)
        largest = max(largest, len(chunk))
    assert total == size
    assert largest <= 256 * 1024


def test_files_over_4_gib_use_64_bit_sizes() -> None:
    size = 5 * 1024**3
    media = build_media(spec("mp4", target_size=size))
    assert media.size == size
    head = b"".join(media.iter_bytes(0, 64 * 1024))
    offset = 0
    kinds = []
    while offset < 64 * 1024 and len(kinds) < 4:
        box_size, kind = struct.unpack_from(">I4s", head, offset)
        kinds.append(kind)
        if kind == b"free":
            assert box_size == 1
            (large,) = struct.unpack_from(">Q", head, offset + 8)
            assert offset + large == size
            break
        offset += box_size
    assert kinds == [b"ftyp", b"moov", b"mdat", b"free"]

    webm = build_media(spec("webm", target_size=size))
    assert webm.size == size
    segment_start = b"".join(webm.iter_bytes(0, 64))
    header_size = segment_start[4] & 0x7F
    segment_offset = 5 + header_size
    assert segment_start[segment_offset : segment_offset + 4] == bytes.fromhex("18538067")
    segment_size = int.from_bytes(segment_start[segment_offset + 4 : segment_offset + 12], "big") & (
        (1 << 56) - 1
    )
    assert segment_offset + 12 + segment_size == size


@pytest.mark.parametrize("container", ["mp4", "webm"])
def test_odd_and_extreme_resolutions(container: str) -> None:
    for width, height in [(641, 479), (16, 16), (1280, 720), (720, 1280)]:
        media_spec = spec(container, width=width, height=height, duration=2)
        check(build_media(media_spec), media_spec)


def test_unknown_container_is_rejected() -> None:
    with pytest.raises(ValueError):
        build_media(spec("avi"))


# --------------------------------------------------------------------------------------- ffprobe


def _probe(path: Path) -> dict[str, object]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is not installed")
def test_ffprobe_reads_both_containers(tmp_path: Path) -> None:
    for container, codecs in [("mp4", ["h264", "aac"]), ("webm", ["vp8", "opus"])]:
        media_spec = spec(container, width=1280, height=720, duration=5, target_size=123_457)
        path = tmp_path / f"composition.{container}"
        path.write_bytes(build_media(media_spec).read_all())
        probe = _probe(path)
        streams = probe["streams"]
        assert isinstance(streams, list)
        assert [s["codec_name"] for s in streams] == codecs
        video = streams[0]
        assert (video["width"], video["height"]) == (1280, 720)
        fmt = probe["format"]
        assert isinstance(fmt, dict)
        assert int(fmt["size"]) == 123_457
        assert float(fmt["duration"]) == pytest.approx(5, abs=0.1)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_mp4_decodes_without_errors(tmp_path: Path) -> None:
    path = tmp_path / "composition.mp4"
    path.write_bytes(
        build_media(spec("mp4", width=641, height=479, duration=3, target_size=9_000)).read_all()
    )
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert result.stderr == ""
