"""Local response normalisation of net A-LRN, with its alpha convention made explicit.

The paper uses "AlexNet's parameters": size n=5, alpha=1e-4, beta=0.75, k=2.
Two formulas go by that name:

* AlexNet (Krizhevsky et al. 2012, Sect. 3.3):
  ``b_c = a_c / (k + alpha * sum_{c'} a_{c'}^2) ** beta``
* Caffe and PyTorch (``nn.LocalResponseNorm``) divide alpha by n:
  ``b_c = a_c / (k + alpha / n * sum_{c'} a_{c'}^2) ** beta``

the sum running over the n channels centred on c (zero beyond the edges).

vggkit's default is ``convention='caffe'`` (alpha divided by n): the paper's
implementation is derived from Caffe (Sect. 3.3), whose LRN layer with
``alpha=1e-4`` computes exactly this. ``convention='alexnet'`` gives the
AlexNet formula with the same alpha.
"""
from __future__ import annotations

from torch import nn

CONVENTIONS = ("caffe", "alexnet")


class LocalResponseNorm(nn.LocalResponseNorm):
    """Cross-channel LRN; see the module docstring for ``convention``."""

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0,
                 convention: str = "caffe") -> None:
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown LRN convention '{convention}'; choose one of {CONVENTIONS}")
        # nn.LocalResponseNorm divides its alpha by size, so AlexNet's formula
        # needs alpha * size passed in to come out as plain alpha
        super().__init__(size, alpha * size if convention == "alexnet" else alpha, beta, k)
        self.convention = convention
        self.paper_alpha = alpha

    def extra_repr(self) -> str:
        return (f"size={self.size}, alpha={self.paper_alpha}, beta={self.beta}, k={self.k}, "
                f"convention={self.convention!r}")
