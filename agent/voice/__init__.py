"""Vietnamese voice call-outs: number reading, call-out sentences, offline speech and the announcer.

``numbers`` and ``phrases`` are pure functions; ``tts`` renders speech to PCM with espeak-ng or a
ward's own recorded clips; ``announcer`` plays call-outs one at a time through a ``devices.audio``
sink.
"""
