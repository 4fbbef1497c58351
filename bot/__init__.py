"""The omnirouter router process: channels, pipeline, NLU, queue and web console."""
