"""prefix_xor: `x_0 .. x_{L-1} = y_0 .. y_{L-1} <EOS>` with y_r = x_0 xor .. xor x_r.

A whole qlf task in one file: tokens, layout, instance space, answer and features, declared as
data and computed in one vectorised pass.
"""
import math

import numpy as np

from qlf.tasks import Examples, Feature, FeatureLabels, Task, loss_mask_from


class PrefixXor(Task):
    name = "prefix_xor"  # the name the entry point registers
    tokens = ("0", "1", "=", "<EOS>")  # ids 0..3; '=' is always second to last, EOS last
    default_size, min_size, max_size = 8, 1, 62
    size_unit = "bits"
    equivalence = "none: every L-bit string is its own instance"
    features = (
        Feature("running_xor", "binary",
                "row r = x_0 xor .. xor x_r; read at position r (the token x_r)"),
        Feature("input_bit", "binary",
                "row r = x_r; read at position L+r ('=' or y_{r-1}: the token that predicts y_r)"),
    )

    @property
    def seq_len(self) -> int:  # every example has this fixed length (EOS padding if needed)
        return 2 * self.size + 2

    @property
    def space_size(self) -> int:  # instance classes, numbered 0 .. space_size-1
        return 2 ** self.size

    def random_guess_loss(self) -> float:  # L unknown bits among L+2 scored targets
        return self.size / (self.size + 2) * math.log(2)

    def _generate(self, index, salt, features):
        # class k is the bit string of k (x_r = bit r); no choice is left for the salt
        L, n = self.size, len(index)
        x = ((index[:, None] >> np.arange(L, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
        y = np.bitwise_xor.accumulate(x, axis=1)
        ids = np.empty((n, self.seq_len), dtype=np.uint8)
        ids[:, :L], ids[:, L], ids[:, L + 1:2 * L + 1], ids[:, 2 * L + 1] = x, 2, y, 3
        labels = {}
        if features:  # the same pass that wrote the answer labels the features
            rows = np.arange(L, dtype=np.int32)
            labels["running_xor"] = FeatureLabels(np.tile(rows, (n, 1)), y, "binary")
            labels["input_bit"] = FeatureLabels(np.tile(L + rows, (n, 1)), x, "binary")
        return Examples(ids, loss_mask_from(ids, self.eq_id, self.eos_id), index, labels)
