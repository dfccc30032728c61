"""Synthetic composition media: small, well-formed MP4 (ISO BMFF) and WebM (Matroska) files of any size.

A :class:`MediaFile` is a sequence of parts that are produced on demand, so a file of hundreds of megabytes is
streamed in chunks without being held in memory:

* MP4: ``ftyp``, ``moov`` (``mvhd`` and one ``trak`` per track with a full sample table), ``mdat`` with the
  samples, then a ``free`` box that pads the file to the requested size. The video track is H.264
  (constrained baseline, one grey IDR picture followed by skipped P pictures, one per second) and the audio
  track is AAC-LC silence, so the file decodes.
* WebM: the EBML header, then a ``Segment`` with ``Info``, ``Tracks`` and one ``Cluster`` per second holding
  ``SimpleBlock`` frames (VP8 key-frame headers for video, Opus silence packets for audio), then a ``Void``
  element that pads the file to the requested size.

Everything is deterministic for a given :class:`MediaSpec`: the same composition always yields the same bytes.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["CONTENT_TYPES", "MediaFile", "MediaSpec", "build_media"]

CONTENT_TYPES = {"mp4": "video/mp4", "webm": "video/webm"}
DEFAULT_CHUNK_BYTES = 256 * 1024
PAD_BLOCK_BYTES = 64 * 1024
WRITING_APP = "twilio-video-operator emulator"

_MP4_EPOCH_OFFSET = 2_082_844_800  # seconds from 1904-01-01 to 1970-01-01
_MATROSKA_EPOCH = datetime(2001, 1, 1, tzinfo=UTC)
_AUDIO_RATE = 16_000
_AAC_FRAME_SAMPLES = 1024
_VIDEO_TIMESCALE = 1000
_OPUS_PACKET_MS = 100


@dataclass(frozen=True)
class MediaSpec:
    """What to synthesize; a ``target_size`` of ``None`` (or below the minimum) gives the smallest file."""

    container: str  # "mp4" | "webm"
    width: int
    height: int
    duration: int  # whole seconds, at least 1
    video: bool
    audio: bool
    seed: str  # identifies the file, e.g. the composition SID
    created: datetime
    target_size: int | None = None


# ------------------------------------------------------------------------------------------------ parts


class _Part(Protocol):
    size: int

    def read(self, offset: int, length: int) -> bytes: ...


class _Literal:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]


class _Repeated:
    """``size`` bytes of a repeating block (padding payload)."""

    def __init__(self, size: int, block: bytes) -> None:
        self.size = size
        self.block = block

    def read(self, offset: int, length: int) -> bytes:
        block_len = len(self.block)
        start = offset % block_len
        out = bytearray()
        while len(out) < length:
            piece = self.block[start : start + length - len(out)]
            out += piece
            start = 0
        return bytes(out)


class _Units:
    """``count`` units of equal size; unit ``i`` is made by ``make(i)`` when read (the last one cached)."""

    def __init__(self, count: int, unit_size: int, make: Callable[[int], bytes]) -> None:
        self.count = count
        self.unit_size = unit_size
        self.size = count * unit_size
        self._make = make
        self._cached: tuple[int, bytes] | None = None

    def _unit(self, index: int) -> bytes:
        if self._cached is None or self._cached[0] != index:
            data = self._make(index)
            if len(data) != self.unit_size:
                raise AssertionError("media unit has the wrong size")
            self._cached = (index, data)
        return self._cached[1]

    def read(self, offset: int, length: int) -> bytes:
        out = bytearray()
        while len(out) < length and offset < self.size:
            index, within = divmod(offset, self.unit_size)
            piece = self._unit(index)[within : within + length - len(out)]
            out += piece
            offset += len(piece)
        return bytes(out)


class MediaFile:
    """A synthesized media file: its size, content type and its bytes by range."""

    def __init__(self, container: str, parts: list[_Part]) -> None:
        self.container = container
        self.content_type = CONTENT_TYPES[container]
        self._parts = parts
        self.size = sum(part.size for part in parts)

    def iter_bytes(
        self, start: int = 0, end: int | None = None, chunk_size: int = DEFAULT_CHUNK_BYTES
    ) -> Iterator[bytes]:
        """Bytes ``start`` (inclusive) to ``end`` (exclusive), in chunks of at most ``chunk_size``."""
        stop = self.size if end is None else min(end, self.size)
        position = max(0, start)
        part_start = 0
        for part in self._parts:
            part_end = part_start + part.size
            while position < stop and position < part_end:
                length = min(chunk_size, stop - position, part_end - position)
                yield part.read(position - part_start, length)
                position += length
            part_start = part_end
            if position >= stop:
                return

    def read_all(self) -> bytes:
        """The whole file (for small files and tests)."""
        return b"".join(self.iter_bytes())


def _pad_block(seed: str) -> bytes:
    """Deterministic filler for padding, derived from ``seed``."""
    out = bytearray()
    counter = 0
    while len(out) < PAD_BLOCK_BYTES:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:PAD_BLOCK_BYTES])


def build_media(spec: MediaSpec) -> MediaFile:
    """The media file for ``spec`` (``container`` is ``mp4`` or ``webm``)."""
    if spec.container == "mp4":
        return _build_mp4(spec)
    if spec.container == "webm":
        return _build_webm(spec)
    raise ValueError(f"unsupported container {spec.container!r}")


def _even(value: int) -> int:
    return max(16, value + (value % 2))


# ---------------------------------------------------------------------------------------- H.264 / AAC


class _BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, count: int, value: int) -> None:
        self.bits.extend((value >> shift) & 1 for shift in range(count - 1, -1, -1))

    def ue(self, value: int) -> None:
        code = value + 1
        length = code.bit_length()
        self.u(length - 1, 0)
        self.u(length, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp_trailing(self) -> bytes:
        self.bits.append(1)
        while len(self.bits) % 8:
            self.bits.append(0)
        return bytes(int("".join(map(str, self.bits[i : i + 8])), 2) for i in range(0, len(self.bits), 8))


def _escape(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes (``00 00 0x`` -> ``00 00 03 0x`` for x <= 3)."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _nal(header: int, rbsp: bytes) -> bytes:
    return bytes([header]) + _escape(rbsp)


@dataclass(frozen=True)
class _H264:
    width: int
    height: int

    @property
    def mbs_wide(self) -> int:
        return math.ceil(self.width / 16)

    @property
    def mbs_high(self) -> int:
        return math.ceil(self.height / 16)

    def sps(self) -> bytes:
        bits = _BitWriter()
        bits.u(8, 66)  # profile_idc: baseline
        bits.u(8, 0xC0)  # constraint_set0 + constraint_set1: constrained baseline
        bits.u(8, 40)  # level 4.0
        bits.ue(0)  # seq_parameter_set_id
        bits.ue(0)  # log2_max_frame_num_minus4
        bits.ue(2)  # pic_order_cnt_type
        bits.ue(1)  # max_num_ref_frames
        bits.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
        bits.ue(self.mbs_wide - 1)
        bits.ue(self.mbs_high - 1)
        bits.u(1, 1)  # frame_mbs_only_flag
        bits.u(1, 1)  # direct_8x8_inference_flag
        crop_right = (self.mbs_wide * 16 - self.width) // 2
        crop_bottom = (self.mbs_high * 16 - self.height) // 2
        if crop_right or crop_bottom:
            bits.u(1, 1)
            for offset in (0, crop_right, 0, crop_bottom):
                bits.ue(offset)
        else:
            bits.u(1, 0)
        bits.u(1, 0)  # vui_parameters_present_flag
        return _nal(0x67, bits.rbsp_trailing())

    @staticmethod
    def pps() -> bytes:
        bits = _BitWriter()
        bits.ue(0)  # pic_parameter_set_id
        bits.ue(0)  # seq_parameter_set_id
        bits.u(1, 0)  # entropy_coding_mode_flag: CAVLC
        bits.u(1, 0)  # bottom_field_pic_order_in_frame_present_flag
        bits.ue(0)  # num_slice_groups_minus1
        bits.ue(0)  # num_ref_idx_l0_default_active_minus1
        bits.ue(0)  # num_ref_idx_l1_default_active_minus1
        bits.u(1, 0)  # weighted_pred_flag
        bits.u(2, 0)  # weighted_bipred_idc
        bits.se(0)  # pic_init_qp_minus26
        bits.se(0)  # pic_init_qs_minus26
        bits.se(0)  # chroma_qp_index_offset
        bits.u(1, 1)  # deblocking_filter_control_present_flag
        bits.u(1, 0)  # constrained_intra_pred_flag
        bits.u(1, 0)  # redundant_pic_cnt_present_flag
        return _nal(0x68, bits.rbsp_trailing())

    def idr_slice(self) -> bytes:
        """An I slice where every macroblock is Intra16x16 DC prediction without residual: a grey picture."""
        bits = _BitWriter()
        bits.ue(0)  # first_mb_in_slice
        bits.ue(7)  # slice_type: I (all slices)
        bits.ue(0)  # pic_parameter_set_id
        bits.u(4, 0)  # frame_num
        bits.ue(0)  # idr_pic_id
        bits.u(1, 0)  # no_output_of_prior_pics_flag
        bits.u(1, 0)  # long_term_reference_flag
        bits.se(0)  # slice_qp_delta
        bits.ue(1)  # disable_deblocking_filter_idc
        for _ in range(self.mbs_wide * self.mbs_high):
            bits.ue(3)  # mb_type I_16x16_2_0_0 (DC prediction, no coded luma/chroma blocks)
            bits.ue(0)  # intra_chroma_pred_mode: DC
            bits.se(0)  # mb_qp_delta
            bits.u(1, 1)  # coeff_token of the luma DC block: no coefficients
        return _nal(0x65, bits.rbsp_trailing())

    def p_slice(self, frame_num: int) -> bytes:
        """A P slice that skips every macroblock (repeats the previous picture)."""
        bits = _BitWriter()
        bits.ue(0)  # first_mb_in_slice
        bits.ue(5)  # slice_type: P (all slices)
        bits.ue(0)  # pic_parameter_set_id
        bits.u(4, frame_num % 16)
        bits.u(1, 0)  # num_ref_idx_active_override_flag
        bits.u(1, 0)  # ref_pic_list_modification_flag_l0
        bits.u(1, 0)  # adaptive_ref_pic_marking_mode_flag
        bits.se(0)  # slice_qp_delta
        bits.ue(1)  # disable_deblocking_filter_idc
        bits.ue(self.mbs_wide * self.mbs_high)  # mb_skip_run
        return _nal(0x41, bits.rbsp_trailing())


def _sei_user_data(seed: str) -> bytes:
    """An SEI user_data_unregistered message naming the file (a UUID derived from ``seed``, then text)."""
    payload = hashlib.sha256(seed.encode()).digest()[:16] + f"{WRITING_APP} {seed}".encode()
    body = bytes([5, len(payload)]) + payload  # payloadType 5, payloadSize (< 255)
    return _nal(0x06, body + b"\x80")


def _length_prefixed(*nals: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(nal)) + nal for nal in nals)


# AAC-LC raw_data_block: one silent single-channel element (global_gain 0, max_sfb 0) then END.
_AAC_SILENT_FRAME = bytes.fromhex("00000007")
# AudioSpecificConfig: AAC-LC (2), 16 kHz (index 8), mono.
_AAC_CONFIG = bytes([0x14, 0x08])


# ------------------------------------------------------------------------------------------------ MP4


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


@dataclass
class _Mp4Track:
    track_id: int
    handler: bytes  # b"vide" | b"soun"
    timescale: int
    sample_delta: int
    sample_sizes: list[int] | None  # None: every sample has size ``constant_size``
    constant_size: int
    sample_count: int
    sync_samples: list[int] | None
    sample_entry: bytes
    media_header: bytes
    width: int = 0
    height: int = 0
    data: list[_Part] | None = None

    @property
    def data_size(self) -> int:
        return sum(part.size for part in self.data or [])


def _video_track(spec: MediaSpec, track_id: int) -> _Mp4Track:
    width, height = _even(spec.width), _even(spec.height)
    codec = _H264(width, height)
    sps, pps = codec.sps(), codec.pps()
    first = _length_prefixed(_sei_user_data(spec.seed), codec.idr_slice())
    later_size = len(_length_prefixed(codec.p_slice(1)))
    count = spec.duration
    later = _Units(count - 1, later_size, lambda index: _length_prefixed(codec.p_slice(index + 1)))
    avcc = _box(
        b"avcC",
        bytes([1, 66, 0xC0, 40, 0xFF, 0xE1]),
        struct.pack(">H", len(sps)),
        sps,
        bytes([1]),
        struct.pack(">H", len(pps)),
        pps,
    )
    entry = _box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),  # data_reference_index
        bytes(16),
        struct.pack(">HH", width, height),
        struct.pack(">II", 0x00480000, 0x00480000),  # 72 dpi
        bytes(4),
        struct.pack(">H", 1),  # frame_count
        bytes([4]) + b"H264".ljust(31, b"\0"),  # compressorname
        struct.pack(">Hh", 0x0018, -1),
        avcc,
    )
    return _Mp4Track(
        track_id=track_id,
        handler=b"vide",
        timescale=_VIDEO_TIMESCALE,
        sample_delta=_VIDEO_TIMESCALE,
        sample_sizes=[len(first)] + [later_size] * (count - 1),
        constant_size=0,
        sample_count=count,
        sync_samples=[1],
        sample_entry=entry,
        media_header=_full_box(b"vmhd", 0, 1, bytes(8)),
        width=width,
        height=height,
        data=[_Literal(first), later],
    )


def _audio_track(spec: MediaSpec, track_id: int) -> _Mp4Track:
    count = math.ceil(spec.duration * _AUDIO_RATE / _AAC_FRAME_SAMPLES)
    decoder_specific = bytes([0x05, len(_AAC_CONFIG)]) + _AAC_CONFIG
    decoder_config_body = (
        bytes([0x40, 0x15])  # MPEG-4 audio, audio stream
        + (0).to_bytes(3, "big")  # bufferSizeDB
        + struct.pack(">II", 0, 0)  # max and average bitrate
        + decoder_specific
    )
    decoder_config = bytes([0x04, len(decoder_config_body)]) + decoder_config_body
    sl_config = bytes([0x06, 0x01, 0x02])
    es_body = struct.pack(">HB", track_id, 0) + decoder_config + sl_config
    esds = _full_box(b"esds", 0, 0, bytes([0x03, len(es_body)]), es_body)
    entry = _box(
        b"mp4a",
        bytes(6),
        struct.pack(">H", 1),
        bytes(8),
        struct.pack(">HHHH", 1, 16, 0, 0),  # channels, sample size, pre_defined, reserved
        struct.pack(">I", _AUDIO_RATE << 16),
        esds,
    )
    return _Mp4Track(
        track_id=track_id,
        handler=b"soun",
        timescale=_AUDIO_RATE,
        sample_delta=_AAC_FRAME_SAMPLES,
        sample_sizes=None,
        constant_size=len(_AAC_SILENT_FRAME),
        sample_count=count,
        sync_samples=None,
        sample_entry=entry,
        media_header=_full_box(b"smhd", 0, 0, bytes(4)),
        data=[_Repeated(count * len(_AAC_SILENT_FRAME), _AAC_SILENT_FRAME)],
    )


def _trak(track: _Mp4Track, spec: MediaSpec, chunk_offset: int, handler_name: str) -> bytes:
    created = int(spec.created.timestamp()) + _MP4_EPOCH_OFFSET
    media_duration = track.sample_count * track.sample_delta
    movie_duration = spec.duration * 1000
    tkhd = _full_box(
        b"tkhd",
        0,
        3,  # enabled, in movie
        struct.pack(">IIII", created, created, track.track_id, 0),
        struct.pack(">I", movie_duration),
        bytes(8),
        struct.pack(">hhhH", 0, 0, 0x0100 if track.handler == b"soun" else 0, 0),
        _MATRIX,
        struct.pack(">II", track.width << 16, track.height << 16),
    )
    mdhd = _full_box(
        b"mdhd",
        0,
        0,
        struct.pack(">IIII", created, created, track.timescale, media_duration),
        b"\x55\xc4\0\0",
    )
    hdlr = _full_box(b"hdlr", 0, 0, bytes(4), track.handler, bytes(12), handler_name.encode() + b"\0")
    dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1)))
    stsd = _full_box(b"stsd", 0, 0, struct.pack(">I", 1), track.sample_entry)
    stts = _full_box(b"stts", 0, 0, struct.pack(">III", 1, track.sample_count, track.sample_delta))
    stsc = _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, track.sample_count, 1))
    if track.sample_sizes is None:
        stsz = _full_box(b"stsz", 0, 0, struct.pack(">II", track.constant_size, track.sample_count))
    else:
        table = struct.pack(f">{len(track.sample_sizes)}I", *track.sample_sizes)
        stsz = _full_box(b"stsz", 0, 0, struct.pack(">II", 0, track.sample_count), table)
    stco = _full_box(b"stco", 0, 0, struct.pack(">II", 1, chunk_offset))  # samples sit near the start
    tables = [stsd, stts]
    if track.sync_samples is not None:
        tables.append(
            _full_box(
                b"stss",
                0,
                0,
                struct.pack(">I", len(track.sync_samples)),
                struct.pack(f">{len(track.sync_samples)}I", *track.sync_samples),
            )
        )
    tables += [stsc, stsz, stco]
    minf = _box(b"minf", track.media_header, dinf, _box(b"stbl", *tables))
    return _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))


def _mp4_head(spec: MediaSpec, tracks: list[_Mp4Track], name_padding: int) -> tuple[bytes, bytes]:
    """(``ftyp`` + ``moov``, ``mdat`` header) with chunk offsets pointing into the ``mdat`` that follows."""
    brands = [b"isom", b"iso2", b"mp41"] + ([b"avc1"] if any(t.handler == b"vide" for t in tracks) else [])
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 512), *brands)
    created = int(spec.created.timestamp()) + _MP4_EPOCH_OFFSET
    mvhd = _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", created, created, 1000, spec.duration * 1000),
        struct.pack(">IH", 0x00010000, 0x0100),  # rate 1.0, volume 1.0
        bytes(10),
        _MATRIX,
        bytes(24),
        struct.pack(">I", len(tracks) + 1),
    )
    data_size = sum(t.data_size for t in tracks)
    mdat_header = struct.pack(">I4s", 8 + data_size, b"mdat")  # samples are tiny; padding goes in ``free``

    def moov(first_offset: int) -> bytes:
        traks = []
        offset = first_offset
        for index, track in enumerate(tracks):
            label = f"{WRITING_APP} {spec.seed}"
            if index == 0:
                label += " " * name_padding
            traks.append(_trak(track, spec, offset, label))
            offset += track.data_size
        return _box(b"moov", mvhd, *traks)

    head = ftyp + moov(len(ftyp) + len(moov(0)) + len(mdat_header))
    return head, mdat_header


def _build_mp4(spec: MediaSpec) -> MediaFile:
    tracks: list[_Mp4Track] = []
    if spec.video or not spec.audio:
        tracks.append(_video_track(spec, len(tracks) + 1))
    if spec.audio:
        tracks.append(_audio_track(spec, len(tracks) + 1))
    head, mdat_header = _mp4_head(spec, tracks, 0)
    base = len(head) + len(mdat_header) + sum(t.data_size for t in tracks)
    padding = 0 if spec.target_size is None else max(0, spec.target_size - base)
    if 0 < padding < 8:  # too small for a box: lengthen a handler name instead
        head, mdat_header = _mp4_head(spec, tracks, padding)
        padding = 0
    parts: list[_Part] = [_Literal(head), _Literal(mdat_header)]
    for track in tracks:
        parts.extend(track.data or [])
    if padding >= 8:
        if padding > 0xFFFFFFFF:
            header = struct.pack(">I4sQ", 1, b"free", padding)
        else:
            header = struct.pack(">I4s", padding, b"free")
        parts.append(_Literal(header))
        parts.append(_Repeated(padding - len(header), _pad_block(spec.seed)))
    return MediaFile("mp4", parts)


# ----------------------------------------------------------------------------------------------- WebM


def _vint_size(value: int, length: int | None = None) -> bytes:
    """An EBML data size, in ``length`` bytes or the fewest possible."""
    if length is None:
        length = 1
        while value >= (1 << (7 * length)) - 1:
            length += 1
    if value >= (1 << (7 * length)) - 1:
        raise ValueError("EBML size does not fit")
    return ((1 << (7 * length)) | value).to_bytes(length, "big")


def _element(element_id: int, payload: bytes, size_length: int | None = None) -> bytes:
    id_bytes = element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
    return id_bytes + _vint_size(len(payload), size_length) + payload


def _uint(element_id: int, value: int, length: int | None = None) -> bytes:
    size = length or max(1, (value.bit_length() + 7) // 8)
    return _element(element_id, value.to_bytes(size, "big"))


def _float(element_id: int, value: float) -> bytes:
    return _element(element_id, struct.pack(">d", value))


def _text(element_id: int, value: str) -> bytes:
    return _element(element_id, value.encode("utf-8"))


_EBML = 0x1A45DFA3
_SEGMENT = 0x18538067
_INFO = 0x1549A966
_TRACKS = 0x1654AE6B
_TRACK_ENTRY = 0xAE
_CLUSTER = 0x1F43B675
_SIMPLE_BLOCK = 0xA3
_VOID = 0xEC
_SEGMENT_SIZE_BYTES = 8
_VOID_MIN = 1 + 8  # ID + an 8-byte size


def _vp8_key_frame_header(width: int, height: int) -> bytes:
    """The uncompressed data chunk of a VP8 key frame (frame tag, start code, dimensions)."""
    first_partition = 0
    tag = 0 | (0 << 1) | (1 << 4) | (first_partition << 5)  # key frame, version 0, shown
    return tag.to_bytes(3, "little") + bytes([0x9D, 0x01, 0x2A]) + struct.pack("<HH", width, height)


# Opus: TOC for CELT full-band 20 ms mono, code 3 (several frames), then 5 frames of zero bytes (silence).
_OPUS_SILENCE = bytes([(31 << 3) | 3, 5])
_OPUS_HEAD = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", 312, 48_000, 0, 0)


def _webm_tracks(spec: MediaSpec) -> tuple[bytes, bool, bool]:
    video = spec.video or not spec.audio
    entries = []
    number = 1
    if video:
        entries.append(
            _element(
                _TRACK_ENTRY,
                _uint(0xD7, number)
                + _uint(0x73C5, int.from_bytes(hashlib.sha256(f"{spec.seed}:v".encode()).digest()[:7], "big"))
                + _uint(0x83, 1)
                + _uint(0x9C, 0)
                + _text(0x86, "V_VP8")
                + _element(0xE0, _uint(0xB0, _even(spec.width)) + _uint(0xBA, _even(spec.height))),
            )
        )
        number += 1
    if spec.audio:
        entries.append(
            _element(
                _TRACK_ENTRY,
                _uint(0xD7, number)
                + _uint(0x73C5, int.from_bytes(hashlib.sha256(f"{spec.seed}:a".encode()).digest()[:7], "big"))
                + _uint(0x83, 2)
                + _uint(0x9C, 0)
                + _text(0x86, "A_OPUS")
                + _element(0x63A2, _OPUS_HEAD)
                + _uint(0x56AA, 6_500_000)  # CodecDelay: 312 samples at 48 kHz, in ns
                + _uint(0x56BB, 80_000_000)  # SeekPreRoll: 80 ms
                + _element(0xE1, _float(0xB5, 48_000.0) + _uint(0x9F, 1)),
            )
        )
    return _element(_TRACKS, b"".join(entries)), video, spec.audio


def _webm_cluster_maker(spec: MediaSpec, video: bool, audio: bool) -> tuple[int, Callable[[int], bytes]]:
    frame = _vp8_key_frame_header(_even(spec.width), _even(spec.height))
    audio_track = 2 if video else 1

    def block(track: int, relative_ms: int, data: bytes) -> bytes:
        header = bytes([0x80 | track]) + struct.pack(">hB", relative_ms, 0x80)
        return _element(_SIMPLE_BLOCK, header + data)

    def make(second: int) -> bytes:
        body = _uint(0xE7, second * 1000, length=8)  # cluster Timestamp in ms, fixed width
        if video:
            body += block(1, 0, frame)
        if audio:
            for index in range(1000 // _OPUS_PACKET_MS):
                body += block(audio_track, index * _OPUS_PACKET_MS, _OPUS_SILENCE)
        return _element(_CLUSTER, body, size_length=4)

    return len(make(0)), make


def _build_webm(spec: MediaSpec) -> MediaFile:
    ebml = _element(
        _EBML,
        _uint(0x4286, 1)
        + _uint(0x42F7, 1)
        + _uint(0x42F2, 4)
        + _uint(0x42F3, 8)
        + _text(0x4282, "webm")
        + _uint(0x4287, 4)
        + _uint(0x4285, 2),
    )
    tracks, video, audio = _webm_tracks(spec)
    cluster_size, make_cluster = _webm_cluster_maker(spec, video, audio)
    clusters = _Units(spec.duration, cluster_size, make_cluster)
    date = round((spec.created - _MATROSKA_EPOCH).total_seconds() * 1e9)

    def info(app_padding: int) -> bytes:
        return _element(
            _INFO,
            _uint(0x2AD7B1, 1_000_000)  # TimestampScale: 1 ms
            + _text(0x4D80, WRITING_APP)
            + _text(0x5741, WRITING_APP + " " * app_padding)
            + _float(0x4489, float(spec.duration * 1000))
            + _element(0x4461, struct.pack(">q", date))
            + _text(0x7BA9, spec.seed),
        )

    segment_id = _SEGMENT.to_bytes(4, "big")
    base = len(ebml) + len(segment_id) + _SEGMENT_SIZE_BYTES + len(info(0)) + len(tracks) + clusters.size
    padding = 0 if spec.target_size is None else max(0, spec.target_size - base)
    app_padding = 0
    if 0 < padding < _VOID_MIN:
        app_padding, padding = padding, 0
    segment_info = info(app_padding)
    void_header = b""
    if padding:
        void_header = bytes([_VOID]) + _vint_size(padding - _VOID_MIN, 8)
    content_size = len(segment_info) + len(tracks) + clusters.size + padding
    parts: list[_Part] = [
        _Literal(ebml + segment_id + _vint_size(content_size, _SEGMENT_SIZE_BYTES) + segment_info + tracks),
        clusters,
    ]
    if padding:
        parts.append(_Literal(void_header))
        parts.append(_Repeated(padding - len(void_header), _pad_block(spec.seed)))
    return MediaFile("webm", parts)
