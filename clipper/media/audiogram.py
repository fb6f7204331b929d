"""Audiograms: a short video of one quote to post where audio alone can't go (X, feeds that autoplay muted).

One ffmpeg run (through ffmpeg-python) draws it: a plain background, the quote's audio as a moving waveform
(`showwaves`), and every piece of text — the quote timed word by word, the speaker's name, the job's title —
from one ASS subtitle file rendered by libass (the `ass` filter). Text goes through libass rather than
`drawtext` because ASS times each word without a filter per word and wraps lines itself.

The span is the clip's (`clipper/media/clips.py`): the quote padded by `clip_padding_s`, clamped to the media,
cut after decoding (`atrim`) so it is sample-accurate, with the same short fades. The output is what X and
most players take without a re-encode: H.264 (yuv420p) + AAC in MP4 with the index up front (faststart).

Fonts: a font shipped by a Python package (PyPI `ttf-opensans`) when installed, else DejaVu Sans where the
system or matplotlib has it; libass is pointed at that folder (`fontsdir`), so the text never depends on what
fontconfig happens to find, and nothing is fetched at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import ffmpeg
import structlog

from clipper.config import Settings
from clipper.errors import InvalidRequest, MediaNotFound
from clipper.job.outputs import Quote, Word
from clipper.media.clips import clip_audio, clip_span, encode_atomically
from clipper.media.probe import probe_media
from clipper.store.files import temp_path

BACKGROUND = "0x14213d"  # deep navy
WAVE_COLOUR = "0xfca311"  # amber
# ASS colours are &HAABBGGRR (alpha first, 00 = opaque).
TEXT = "&H00FFFFFF"  # white: the words already said and the title
HIGHLIGHT = "&H0011A3FC"  # amber, as the waveform: the word being said
UPCOMING = "&H00A0A0A0"  # grey: the words still to come
CHAR_WIDTH_EM = 0.58  # average width of a bold sans character in ems: how many characters fit on a line
TITLE_MAX_CHARS = 90


@dataclass(frozen=True)
class Layout:
    """Where things go in one aspect. Sizes in pixels; the ASS file's PlayRes is the frame, so they map 1:1."""

    width: int
    height: int
    caption_size: int
    caption_lines: int  # lines a page of caption may take before the next page replaces it
    title_size: int
    title_margin: int  # from the top
    wave_height: int
    wave_bottom: int  # from the bottom of the frame to the waveform's bottom edge
    speaker_size: int
    side_margin: int = 50

    @property
    def wave_y(self) -> int:
        return self.height - self.wave_bottom - self.wave_height

    @property
    def page_chars(self) -> int:
        per_line = (self.width - 2 * self.side_margin) / (CHAR_WIDTH_EM * self.caption_size)
        return int(per_line * self.caption_lines)


LAYOUTS: dict[str, Layout] = {
    "1:1": Layout(720, 720, caption_size=44, caption_lines=3, title_size=28, title_margin=40, wave_height=160,
                  wave_bottom=24, speaker_size=30),
    "9:16": Layout(720, 1280, caption_size=52, caption_lines=5, title_size=32, title_margin=120, wave_height=240,
                   wave_bottom=200, speaker_size=36),
}


def aspect_slug(aspect: str) -> str:
    """`1:1` -> `1x1`: the aspect as it appears in a file name (no colon, which some systems refuse)."""
    return aspect.replace(":", "x")


def layout_for(aspect: str) -> Layout:
    try:
        return LAYOUTS[aspect]
    except KeyError:
        raise InvalidRequest(f"unknown audiogram aspect {aspect!r}; use one of: {', '.join(LAYOUTS)}") from None


# --- fonts ---

def caption_font() -> tuple[Path | None, str]:
    """The folder libass loads fonts from and the family to ask for: a packaged font first, then DejaVu.

    (None, "sans-serif") when none is found: libass then asks fontconfig, which on a bare container may find
    nothing and draw no text, so that is logged.
    """
    spec = find_spec("ttf_opensans")
    if spec is not None and spec.origin:
        folder = Path(spec.origin).parent / "ttf"
        if (folder / "OpenSans-Bold.ttf").is_file():
            return folder, "Open Sans"
    candidates = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu")]
    mpl = find_spec("matplotlib")
    if mpl is not None and mpl.origin:
        candidates.append(Path(mpl.origin).parent / "mpl-data" / "fonts" / "ttf")
    for folder in candidates:
        if (folder / "DejaVuSans-Bold.ttf").is_file():
            return folder, "DejaVu Sans"
    structlog.get_logger().warning("audiogram.no_font", hint="pip install ttf-opensans")
    return None, "sans-serif"


# --- captions (ASS) ---

def _ass_time(seconds: float) -> str:
    cs = max(0, round(seconds * 100))
    return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def _ass_text(text: str) -> str:
    """Plain text made safe for an ASS event: braces open override blocks and backslashes start commands."""
    return " ".join(text.replace("\\", "/").replace("{", "(").replace("}", ")").split())


def quote_words(quote: Quote, words: list[Word]) -> list[Word]:
    """The words that make up the quote, with their times; spread evenly over its span if there are none.

    A word belongs to the quote when its middle falls inside the quote's span (quotes are grounded on the
    transcript's words, so their edges are word edges). Without word times (an engine that gives none) the
    quote's own words share the span equally: captions still move, roughly in time.
    """
    inside = [w for w in words if quote.start - 0.01 <= (w.start + w.end) / 2 <= quote.end + 0.01 and w.word.strip()]
    if inside:
        return sorted(inside, key=lambda w: w.start)
    tokens = quote.text.split()
    step = (quote.end - quote.start) / max(1, len(tokens))
    return [Word(start=quote.start + i * step, end=quote.start + (i + 1) * step, word=t) for i, t in enumerate(tokens)]


def _pages(tokens: list[str], budget: int) -> list[list[int]]:
    """Indices of `tokens` grouped into pages of at most `budget` characters (a longer word gets its own)."""
    pages: list[list[int]] = [[]]
    used = 0
    for i, token in enumerate(tokens):
        need = len(token) + (1 if pages[-1] else 0)
        if pages[-1] and used + need > budget:
            pages.append([])
            used, need = 0, len(token)
        pages[-1].append(i)
        used += need
    return [p for p in pages if p]


def captions_ass(words: list[Word], start: float, length: float, layout: Layout, family: str, *,
                 title: str | None, speaker: str | None) -> str:
    """The ASS file: one event per word (its page of the quote, that word highlighted, from when it is said
    until the next word is), and the title and speaker for the whole video. `start` is the media time of the
    video's first frame; event times are relative to it."""
    tokens = [_ass_text(w.word) for w in words]
    times: list[float] = []
    for i, w in enumerate(words):  # from 0 (the first page shows during the padding), never going backwards
        t = 0.0 if i == 0 else min(max(w.start - start, times[-1] + 0.01), length)
        times.append(t)
    events = []
    for page in _pages(tokens, layout.page_chars):
        for i in page:
            shown = []
            for j in page:
                colour = TEXT if j < i else HIGHLIGHT if j == i else UPCOMING
                shown.append(f"{{\\c{colour}&}}{tokens[j]}")
            end = times[i + 1] if i + 1 < len(times) else length
            events.append(f"Dialogue: 1,{_ass_time(times[i])},{_ass_time(end)},Caption,,0,0,0,,{' '.join(shown)}")
    whole = f"{_ass_time(0)},{_ass_time(length)}"
    if title:
        text = _ass_text(title)
        text = text if len(text) <= TITLE_MAX_CHARS else text[: TITLE_MAX_CHARS - 1].rstrip() + "…"
        events.append(f"Dialogue: 0,{whole},Title,,0,0,0,,{text}")
    if speaker:
        events.append(f"Dialogue: 0,{whole},Speaker,,0,0,0,,— {_ass_text(speaker)}")
    m = layout.side_margin
    speaker_margin = layout.height - layout.wave_y + 12  # just above the waveform
    style = ("Style: {name},{family},{size},{colour},{colour},&H00000000,&H00000000,{bold},0,0,0,100,100,0,0,1,"
             "{outline},0,{align},{m},{m},{mv},1")
    styles = [
        style.format(name="Caption", family=family, size=layout.caption_size, colour=TEXT, bold=-1, outline=2,
                     align=5, m=m, mv=0),
        style.format(name="Title", family=family, size=layout.title_size, colour=TEXT, bold=0, outline=0,
                     align=8, m=m, mv=layout.title_margin),
        style.format(name="Speaker", family=family, size=layout.speaker_size, colour=HIGHLIGHT, bold=-1,
                     outline=0, align=2, m=m, mv=speaker_margin),
    ]
    return "\n".join([
        "[Script Info]", "ScriptType: v4.00+", f"PlayResX: {layout.width}", f"PlayResY: {layout.height}",
        "WrapStyle: 0", "ScaledBorderAndShadow: yes", "",
        "[V4+ Styles]",
        ("Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
         "Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, "
         "MarginL, MarginR, MarginV, Encoding"),
        *styles, "",
        "[Events]", "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
        *events, "",
    ])


# --- the video ---

def audiogram_span(quote: Quote, padding_s: float, media_duration_s: float | None) -> tuple[float, float]:
    """[start, end) of the media an audiogram shows: the quote's clip span (the clips' padding, clamped)."""
    return clip_span(quote.start, quote.end, padding_s, media_duration_s)


def make_audiogram(
    audio: Path, quote: Quote, words: list[Word], out: Path, *, title: str | None, speaker: str | None,
    aspect: str, settings: Settings, media_duration_s: float | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Path:
    """Render `quote` of `audio` into the MP4 `out` and return it. `words` may be the whole transcript's.

    `out` is written under a temp name beside it, fsynced and renamed, so it is complete or absent. With
    `should_stop` (asked every 0.1 s), ffmpeg is killed and `StopRequested` raised when it turns true.
    """
    audio, out = Path(audio), Path(out)
    layout = layout_for(aspect)
    if not audio.is_file():
        raise MediaNotFound(f"no audio at {audio} to make an audiogram from")
    if quote.start < 0 or quote.end <= quote.start:
        raise InvalidRequest(f"invalid quote span {quote.start:.3f}-{quote.end:.3f} s")
    if media_duration_s is None:
        media_duration_s = probe_media(audio).duration_s
    if media_duration_s is not None and quote.start >= media_duration_s:
        raise InvalidRequest(f"quote start {quote.start:.3f} s is past the end of the media ({media_duration_s:.3f} s)")
    lo, hi = audiogram_span(quote, settings.clip_padding_s, media_duration_s)
    length = hi - lo
    fonts, family = caption_font()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, captions = temp_path(out), temp_path(out.with_suffix(".ass"))
    captions.write_text(captions_ass(quote_words(quote, words), lo, length, layout, family, title=title,
                                     speaker=speaker), encoding="utf-8")
    fps = settings.audiogram_fps
    split = clip_audio(audio, lo, hi, settings.clip_fade_s).filter_multi_output("asplit")
    heard, drawn = split[0], split[1]
    # The waveform follows the loudness evened out (phone calls are quiet), the audio people hear does not.
    wave = (drawn.filter("dynaudnorm", f=100, g=5)
            .filter("showwaves", s=f"{layout.width}x{layout.wave_height}", mode="cline", rate=fps,
                    colors=WAVE_COLOUR, scale="sqrt", draw="full"))
    background = ffmpeg.input(f"color=c={BACKGROUND}:s={layout.width}x{layout.height}:r={fps}:d={length:.3f}",
                              f="lavfi")
    text_args = {"fontsdir": str(fonts)} if fonts else {}
    video = (ffmpeg.overlay(background, wave, x=0, y=layout.wave_y, shortest=1)
             .filter("ass", str(captions), **text_args))
    stream = ffmpeg.output(video, heard, str(tmp), format="mp4", vcodec="libx264", preset="veryfast", crf=28,
                           pix_fmt="yuv420p", g=fps * 2, acodec="aac", audio_bitrate="64k", ac=1, ar=44100,
                           movflags="+faststart", t=f"{length:.3f}", map_metadata=-1)
    try:
        encode_atomically(stream, tmp, out, f"could not make an audiogram from {audio.name}", should_stop)
    finally:
        tmp.unlink(missing_ok=True)
        captions.unlink(missing_ok=True)
    return out
