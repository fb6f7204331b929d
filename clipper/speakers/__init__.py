"""Who speaks when: diarization of a job's audio and its transcript labelled by speaker."""
