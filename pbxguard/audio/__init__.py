"""Audio in: the format (`audio.format`), G.711 (`audio.g711`), file readers (`audio.files`) and resampling
(`audio.resample`). Nothing here knows about features or calls."""
