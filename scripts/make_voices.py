"""Make tests/data/voices.mp3 + voices.rttm: a synthetic two-voice conversation with exact reference turns.

    python -m scripts.make_voices        # needs espeak-ng and sox (apt-get install -y espeak-ng sox)

Run once by a developer; the outputs are committed, so tests need neither tool. Two espeak-ng voices that
differ in accent, pitch and timbre (a low American male, a high British female variant) take turns; each turn
is trimmed of its leading/trailing silence with sox, so the RTTM spans are where the voice really is.
"""

from __future__ import annotations

import subprocess
import tempfile
import wave
from pathlib import Path

import imageio_ffmpeg

OUT = Path(__file__).resolve().parent.parent / "tests" / "data"
VOICES = {"A": ["-v", "en-us+m3", "-p", "35", "-s", "160"], "B": ["-v", "en-gb+f4", "-p", "75", "-s", "150"]}
GAP_S = 0.5
TURNS = [
    ("A", "Good morning, thanks for calling the station. What can I do for you today?"),
    ("B", "Hello. I wanted to ask about the radio show on Sunday evening."),
    ("A", "Of course. The Sunday programme starts at eight and runs for two hours."),
    ("B", "Lovely. Will the interview with the gardener be repeated next week?"),
    ("A", "Yes, we repeat it on Tuesday afternoon, right after the news."),
    ("B", "Wonderful, I missed the second half because the phone rang."),
    ("A", "It happens to everyone. You can also find it on our website."),
    ("B", "Thank you so much. Have a nice day."),
]


def main() -> None:
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    with tempfile.TemporaryDirectory() as tmp:
        parts, rttm, t = [], [], 0.0
        for i, (who, text) in enumerate(TURNS):
            raw, trimmed = Path(tmp) / f"{i}.raw.wav", Path(tmp) / f"{i}.wav"
            subprocess.run(["espeak-ng", *VOICES[who], "-w", str(raw), text], check=True)
            subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(trimmed), "silence", "1", "0.02", "0.5%",
                            "reverse", "silence", "1", "0.02", "0.5%", "reverse"], check=True)
            with wave.open(str(trimmed)) as w:
                length = w.getnframes() / w.getframerate()
            rttm.append(f"SPEAKER voices 1 {t:.3f} {length:.3f} <NA> <NA> {who} <NA> <NA>")
            parts.append(str(trimmed))
            gap = Path(tmp) / f"{i}.gap.wav"
            subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(gap), "trim", "0", str(GAP_S)], check=True)
            parts.append(str(gap))
            t += length + GAP_S
        joined = Path(tmp) / "voices.wav"
        subprocess.run(["sox", *parts, str(joined)], check=True)
        subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(joined), "-ac", "1", "-ar", "16000", "-b:a", "32k",
                        str(OUT / "voices.mp3")], check=True)
    (OUT / "voices.rttm").write_text("\n".join(rttm) + "\n", encoding="utf-8")
    print(f"{OUT / 'voices.mp3'}: {t:.1f} s, {len(TURNS)} turns")


if __name__ == "__main__":
    main()
