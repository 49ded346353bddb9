"""One sentence of *why* beside each control of the Architecture editor and the Train form: what changing it teaches.
Shown as the widget's help (the ? beside its label), so it is where the student acts without crowding the page."""

EDITOR = {
    "preset": "A known network to start from: change one thing at a time and compare with it.",
    "width": "More channels learn more kinds of stroke, but each 3×3 conv costs in × out × 9 parameters.",
    "padding": "1 keeps the map size; 0 shrinks it by 2 pixels per conv, which saves multiply-adds in every later "
               "layer.",
    "pool": "Halves the map: later convs cost a quarter as much and each sees twice as far across the digit.",
    "transition": "A 1×1 conv mixes channels without looking around: a cheap way to cut the channels (and the next "
                  "convs' parameters) between blocks.",
    "add_conv": "One more 3×3 conv: more depth and 2 more pixels of view, for more parameters.",
    "remove_conv": "One conv fewer: fewer parameters and a narrower view of the digit.",
    "remove_block": "A block fewer: less depth, and one pool fewer, so the last layers see less of the digit.",
    "add_block": "A block more: more depth; with its pool, a smaller map that each later conv sees more of.",
    "dropout": "Switches channels off at random while training so no feature is relied on alone; with "
               "augmentation it is often not needed.",
    "batchnorm": "Normalises each channel over the batch, so a large learning rate trains stably: try training "
                 "without it.",
    "bias": "A learned offset per channel. Batch-norm's own shift makes it redundant; without batch-norm, turn it on.",
    "head": "How the last maps become 10 scores: global average pooling before a 1×1 conv is the cheapest head; a "
            "3×3 conv head costs about 9 times as many parameters.",
    "order": "Where batch-norm sits: before ReLU it normalises what the ReLU cuts, after it what the next conv sees.",
}

TRAIN = {
    "epochs": "Passes over the training images: more usually help until the test accuracy stops rising.",
    "batch_size": "Images per step: larger batches take fewer, less noisy steps and usually want a larger learning "
                  "rate.",
    "lr": "The step size; with the one-cycle schedule, its peak (it rises, then falls): too high and the loss jumps, "
          "too low and it learns slowly.",
    "augment": "Random rotation, scale and shift of each training image: new variants every epoch, so the network "
               "memorises less.",
    "quick": "Trains on 5,000 images: a result in seconds to try an idea, but a run that cannot meet the challenge.",
}
