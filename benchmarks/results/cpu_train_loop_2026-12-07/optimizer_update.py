import time, torch
from jna_fast import JNA
torch.set_num_threads(2)
m = JNA(10, backbone="resnet18", flow_length=5).to(memory_format=torch.channels_last)
ps = [p for p in m.parameters()]
print("params", sum(p.numel() for p in ps)/1e6, "M")
for p in ps: p.grad = torch.randn_like(p)
def t(fn, n=20):
    for _ in range(3): fn()
    best=[]
    for _ in range(n):
        a=time.perf_counter(); fn(); best.append(time.perf_counter()-a)
    best.sort(); return best[len(best)//2]*1e3
for name, opt in [("sgd", torch.optim.SGD(ps, lr=1e-3, momentum=0.9)),
                  ("adamw foreach", torch.optim.AdamW(ps, lr=1e-3, foreach=True)),
                  ("adamw fused", torch.optim.AdamW(ps, lr=1e-3, fused=True))]:
    print(name, "%.1f ms" % t(opt.step))
print("clip", "%.1f ms" % t(lambda: torch.nn.utils.clip_grad_norm_(ps, 1.0)))
