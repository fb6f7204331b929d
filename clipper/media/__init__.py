"""Media handling (URLs, downloads, probing, ffmpeg conversion); knows nothing of Temporal."""
