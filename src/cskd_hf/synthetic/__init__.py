"""The synthetic world the quickstart, the tests and the benchmarks run in: SynthAVA (photo-like images with AVA-like
votes), a tiny CLIP trained on its captions, content pretraining (the ImageNet stand-in) and the quickstart itself.

Nothing here is needed to train or use a model on real data.
"""
