"""FrameDecoder: frames one by one until a segment's first chunk is out, then what the LLM queued, at once."""

from __future__ import annotations

import threading

import torch

from decoders.streaming import AudioChunk
from serve.audio_stream import FrameDecoder


class BlockRecorder:
    """A decoder that records the size of each block of frames it is given and holds after its first chunk."""

    sample_rate = 16000

    def __init__(self):
        self.blocks: list[int] = []
        self.hold = threading.Event()

    def stream(self, frames, speaker=None):
        for i, block in enumerate(frames):  # block: (t, K)
            self.blocks.append(block.shape[0])
            if i == 0:
                yield AudioChunk(torch.ones(4), 0, self.sample_rate, False)
                self.hold.wait(10)  # the LLM runs ahead meanwhile
        yield AudioChunk(torch.ones(4), 4, self.sample_rate, True)


def test_frames_queued_behind_the_first_chunk_come_as_one_block():
    rec = BlockRecorder()
    first_out, errors, chunks = threading.Event(), [], []

    def on_chunk(chunk):
        chunks.append(chunk)
        first_out.set()

    dec = FrameDecoder(rec, None, on_chunk, errors.append)
    dec.push(torch.zeros(8, dtype=torch.long), 1)
    assert first_out.wait(10)  # one frame in: the first chunk goes out without waiting for more
    for step in range(2, 22):
        dec.push(torch.full((8,), step, dtype=torch.long), step)
    dec.end_segment()
    dec.close()
    rec.hold.set()
    dec.join(10)
    assert not errors and rec.blocks == [1, 20]  # the 20 queued frames reach the decoder together
    assert dec.frames_read == 21 and chunks[-1].llm_step == 21 and len(chunks) == 2
