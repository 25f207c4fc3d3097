"""fastai's Adam, each step done by PyTorch's fused AdamW kernel: the same algorithm, in one pass over memory.

fastai's default optimizer (`fastai.optimizer.Adam`, decoupled weight decay)
runs five Python callbacks per weight tensor, and each reads or writes the
weights' size several times over. On the CPU that step is memory-bound, and
with small images it took about as long as the backward pass. PyTorch's fused
AdamW does the same update reading each tensor once: the learner trains 1.53×
the images per second it trains with fastai's Adam (`benchmarks/run.py`,
`benchmarks/results/throughput.csv`).

`FusedAdam` keeps fastai's `Optimizer` for everything but `step` and `zero_grad`: its
hyper-parameters and their schedules (fit_one_cycle moves lr and mom), its
per-weight state under fastai's names (so checkpoints and `clear_state` work
as before), freezing, `wd_bn_bias` (no weight decay where fastai sets
`do_wd=False`) and `train_bn`. The update is fastai's, term for term (Loshchilov
& Hutter, "Decoupled Weight Decay Regularization", ICLR 2019, algorithm 2):

    w  <- w * (1 - lr*wd)                                  fastai: weight_decay
    m  <- mom*m + (1-mom)*g                                 average_grad(dampening=True)
    v  <- sqr_mom*v + (1-sqr_mom)*g^2                       average_sqr_grad
    w  <- w - lr/(1-mom^t) * m / (sqrt(v/(1-sqr_mom^t)) + eps)   adam_step

PyTorch computes the denominator as sqrt(v)/sqrt(1-sqr_mom^t) + eps, so results
agree with fastai's Adam to float rounding, not bit for bit (tests/test_optim.py).
Like another thread count, that moves a run's numbers within their uncertainty
(docs/default-experiment.md: the same verdict with either optimizer).
"""

import torch
from fastai.optimizer import Optimizer
from torch.optim.adamw import adamw


class FusedAdam(Optimizer):
    """`fastai.optimizer.Adam(decouple_wd=True)` stepped by `torch.optim.adamw.adamw(fused=True)`."""

    def __init__(self, params, lr, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01):
        # fastai's Adam defaults; no callbacks: `step` below does their work.
        super().__init__(params, [], lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd)

    def zero_grad(self):
        """Drop the gradients, as PyTorch's `zero_grad(set_to_none=True)` does, rather than write zeros into them.

        fastai's zeroes them, and the next backward pass then adds into the
        zeros: two passes over the weights' size per batch for nothing.
        Every weight that trains gets a fresh gradient from each backward pass;
        `step` skips those without one, as it skips frozen ones. (So a weight
        frozen after it has trained is left alone rather than stepped with a
        zero gradient; epochbench's fits only ever unfreeze.)
        """
        for p, *_ in self.all_params(with_grad=True):
            p.grad = None

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise NotImplementedError("fastai optimizers do not support closure")
        # One kernel call per parameter group and weight-decay flag: they share every scalar.
        buckets = {}
        for p, pg, state, hyper in self.all_params(with_grad=True):
            buckets.setdefault((id(pg), state.get("do_wd", True)), (hyper, []))[1].append(p)
        for (_, do_wd), (hyper, params) in buckets.items():
            states = [self.state[p] for p in params]
            for p, state in zip(params, states):
                if "grad_avg" not in state:  # the first step (fastai's average_grad makes them there too)
                    state["grad_avg"], state["sqr_avg"] = torch.zeros_like(p), torch.zeros_like(p)
            # The kernel adds 1 to each step count before using it, as fastai's step_stat does.
            steps = [torch.tensor(float(s.get("step", 0)), device=p.device) for s, p in zip(states, params)]
            adamw(params, [p.grad for p in params], [s["grad_avg"] for s in states], [s["sqr_avg"] for s in states],
                  [], steps, fused=True, amsgrad=False, beta1=hyper["mom"], beta2=hyper["sqr_mom"], lr=hyper["lr"],
                  weight_decay=hyper["wd"] if do_wd else 0.0, eps=hyper["eps"], maximize=False)
            for state in states:
                state["step"] = state.get("step", 0) + 1
