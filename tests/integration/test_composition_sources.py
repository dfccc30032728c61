"""A Composition's audio sources reach Twilio as Twilio reads them: each entry of ``audioSources`` and
``audioSourcesExcluded`` as a form key of its own (``AudioSources=a&AudioSources=b``), never joined."""

from __future__ import annotations

from operator_harness import OperatorHarness
from test_composition_harness import (
    bed_fixture,  # noqa: F401 - the bed fixture
    create_composition,
    create_counts,
    has,
    recorded_room,
    twilio_composition,
    wait_composition,
)

from twilio_video_emulator.compositions import service_of


async def test_every_audio_source_is_sent_as_a_repeated_form_key(bed: OperatorHarness) -> None:
    assert bed.emulator is not None
    ns = await bed.namespace()
    room_sid = await recorded_room(bed, ns)
    sources = ["audio", "presenter-*", "PA" + "0" * 32]
    excluded = ["screen-audio", "bot-*"]
    await create_composition(
        bed, ns, "c1", {"roomSid": room_sid, "audioSources": sources, "audioSourcesExcluded": excluded}
    )

    created = await wait_composition(bed, ns, "c1", has("sid"))

    # The emulator keeps every value of a repeated key (a joined "a,b" would be one source).
    composition = service_of(bed.emulator.state).compositions[created["status"]["sid"]]
    assert composition.options.audio_sources == sources
    assert composition.options.audio_sources_excluded == excluded
    assert composition.room_sid == room_sid
    fetched = await twilio_composition(bed, composition.sid)  # and FetchComposition lists them all
    assert (fetched["audio_sources"], fetched["audio_sources_excluded"]) == (sources, excluded)
    assert await create_counts(bed) == 1
