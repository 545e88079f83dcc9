"""The model builders: what makes a model folder the runtime then only loads. Nothing outside
this package imports it (the registry, agentr_lib.models, names each build's spec and folder;
a missing pretrained model is made here through the registry's `PRETRAINED_BUILDER`), so
checking a profile, laying out a run or sampling a model never pulls in tokenizer training,
demonstrations or behaviour cloning.

    tokenizer.py   the byte-level BPE tokenizer and the ChatML template of the embedded models
    model.py       a freshly initialised Llama of a spec's shape
    demos.py       expert demonstrations, the phrase book and the judge book (the BC data)
    bc.py          the embedded build: tokenizer, behaviour-cloning stages (resumable), model card
    score.py       greedy test scores of a built embedded model, into its card
    smol_warm.py   SmolLM2-135M-Instruct's behaviour-cloned warm starts
    __main__.py    `python -m agentr_lib.build build --size tiny-disjoint` and `eval MODEL_DIR`
"""
