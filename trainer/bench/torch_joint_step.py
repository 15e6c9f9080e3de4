"""One ProtoPNet joint step in PyTorch (benchmark only, not part of the product).

Same architecture as trainer/bench/joint-step.ts: MobileNetV2 features at 224 px,
add-on 1x1 convs (ReLU, Sigmoid), 2,000 prototypes of depth 128, log similarity,
200-class last layer; CE + 0.8 Clst - 0.08 Sep; Adam with the paper's joint
learning rates. Uses Debian's python3-torch (apt-get install python3-torch
python3-torchvision). Usage: python3 trainer/bench/torch_joint_step.py [batch=32] [threads=1] [steps=3]
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 32
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
torch.set_num_threads(threads)
torch.manual_seed(0)

C, PER, P = 200, 10, 128
M = C * PER
features = torchvision.models.mobilenet_v2().features
add_on = nn.Sequential(nn.Conv2d(1280, P, 1), nn.ReLU(), nn.Conv2d(P, P, 1), nn.Sigmoid())
prototypes = nn.Parameter(torch.rand(M, P))
proto_class = torch.arange(M) // PER
identity = F.one_hot(proto_class, C).float()  # [M, C]
last_layer = nn.Linear(M, C, bias=False)
last_layer.weight.data = (identity.t() * 1.5 - 0.5)
last_layer.weight.requires_grad_(False)

opt = torch.optim.Adam([
    {"params": features.parameters(), "lr": 1e-4},
    {"params": add_on.parameters(), "lr": 3e-3},
    {"params": [prototypes], "lr": 3e-3},
])


def step(x, y):
    z = add_on(features(x))  # [B, P, 7, 7]
    b = z.shape[0]
    z = z.permute(0, 2, 3, 1).reshape(b, -1, P)  # [B, 49, P]
    d = (z ** 2).sum(-1, keepdim=True) - 2 * z @ prototypes.t() + (prototypes ** 2).sum(-1)
    d = d.clamp(min=0)
    min_d = d.min(dim=1).values  # [B, M]
    sim = torch.log((min_d + 1) / (min_d + 1e-4))
    logits = last_layer(sim)
    own = identity[:, y].t()  # [B, M]
    max_d = float(P)
    clst = ((max_d - min_d) * own).max(dim=1).values
    clst = (max_d - clst).mean()
    sep = ((max_d - min_d) * (1 - own)).max(dim=1).values
    sep = (max_d - sep).mean()
    loss = F.cross_entropy(logits, y) + 0.8 * clst - 0.08 * sep
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


features.train()
x = torch.rand(batch, 3, 224, 224)
y = torch.arange(batch) % C
times = []
for s in range(steps + 1):
    t = time.perf_counter()
    step(x, y)
    if s > 0:
        times.append(time.perf_counter() - t)
times.sort()
med = times[len(times) // 2]
print(f"torch {torch.__version__}, {threads} thread(s)")
print(f"joint step, MobileNetV2 + 2,000-prototype head, batch {batch} at 224px: median {med:.2f} s/step ({1000 * med / batch:.0f} ms/image)")
