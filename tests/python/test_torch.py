"""The Python bindings against PyTorch (Debian's python3-torch): a graph made with
neurc.Builder and the same network in torch.nn, sharing weights by state_dict name, must
give the same logits, loss and SGD update; and the bf16 policy's gradients must be as
close to fp32's as PyTorch autocast's are. Skips cleanly without numpy or torch."""

import os
import sys
import unittest

import neurc
from neurc import _buffers

np = _buffers.np
try:
    import torch
except ImportError:
    torch = None


@unittest.skipUnless(np is not None and torch is not None, "needs numpy and torch")
class TestAgainstTorch(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        self.ctx = neurc.Context(threads=1)
        b = neurc.Builder(3, self.ctx)
        y = b.conv2d("conv1", b.input, 8, 3, padding=1, bias=False)
        y = b.relu(b.batchnorm("bn1", y))
        y = b.max_pool2d(y, 2)
        z = b.conv2d("conv2", y, 8, 3, padding=1, groups=2, bias=True)
        y = b.add(y, z)
        y = b.avg_pool2d(y, 2)
        y = b.flatten(b.adaptive_avg_pool2d(y, 1))
        out = b.linear("fc", y, 5)
        self.model = b.finish(out, seed=11)
        b.close()

        class Net(torch.nn.Module):
            def __init__(s):
                super().__init__()
                s.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
                s.bn1 = torch.nn.BatchNorm2d(8)
                s.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1, groups=2)
                s.fc = torch.nn.Linear(8, 5)

            def forward(s, x):
                y = torch.nn.functional.max_pool2d(torch.relu(s.bn1(s.conv1(x))), 2)
                y = torch.nn.functional.avg_pool2d(y + s.conv2(y), 2)
                return s.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(y, 1), 1))

        self.net = Net()
        rng = np.random.default_rng(5)
        # non-trivial running statistics, then copy every neurc tensor into torch
        self.model.set_tensor("bn1.running_mean", rng.normal(0, 0.1, 8).astype(np.float32))
        self.model.set_tensor("bn1.running_var", rng.uniform(0.5, 2.0, 8).astype(np.float32))
        sd = {k: torch.from_numpy(np.array(v)) for k, v in self.model.state_dict().items()}
        sd["bn1.num_batches_tracked"] = sd["bn1.num_batches_tracked"].long().reshape(())
        self.net.load_state_dict(sd)
        self.x = rng.normal(0, 1, (4, 3, 16, 16)).astype(np.float32)
        self.y = np.array([0, 3, 4, 1], dtype=np.int64)

    def tearDown(self):
        self.ctx.close()

    def test_eval_logits_match_torch(self):
        self.net.eval()
        with torch.no_grad():
            want = self.net(torch.from_numpy(self.x)).numpy()
        got = self.model.forward(self.x)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    def test_sgd_step_matches_torch(self):
        t = neurc.Trainer(self.model, lr=0.1, momentum=0.9, weight_decay=1e-3)
        opt = torch.optim.SGD(self.net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        self.net.train()
        for _ in range(2):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.net(torch.from_numpy(self.x)), torch.from_numpy(self.y))
            loss.backward()
            opt.step()
            st = t.step(self.x, self.y)
            self.assertAlmostEqual(st.loss, loss.item(), places=4)
        for name, p in self.net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                self.assertEqual(int(p), int(np.array(self.model.get_tensor(name)).reshape(-1)[0]))
                continue
            np.testing.assert_allclose(self.model.get_tensor(name), p.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


@unittest.skipUnless(np is not None and torch is not None, "needs numpy and torch")
class TestBf16AgainstAutocast(unittest.TestCase):
    """One training step of resnet18 (small-image stem, 1 channel, random batch of 16)
    from the same weights, examples/bench/compare_bf16_grads.py: every parameter's bf16
    gradient against the same backend's fp32 one, for our bf16 policy (ref everywhere;
    onednn where the CPU has bf16 kernels) and for torch.autocast("cpu", bfloat16).
    bf16 rounding makes both ~25% off at initialisation; ours must not be worse than
    autocast's overall (geometric mean) nor for any one parameter (a bias in the
    rounding, truncating instead of rounding to nearest, fails here at fc.bias)."""

    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "bench"))
        try:
            import compare_bf16_grads
        except ImportError as e:  # torchvision
            raise unittest.SkipTest("needs %s" % e.name)
        rng = np.random.default_rng(3)
        x = rng.normal(0, 1, (16, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, 16).astype(np.int32)
        backends = ["ref"]
        try:
            neurc.Context(backend="onednn").close()
            backends.append("onednn")
        except neurc.Error:
            pass  # not built in

        def make_model(ctx):
            return neurc.Model("resnet18", num_classes=10, in_channels=1, small_input=True, context=ctx, seed=7)
        cls.geomean = staticmethod(compare_bf16_grads.geomean)
        cls.cols = compare_bf16_grads.compare(make_model, "resnet18", x, y, backends)

    def check(self, backend):
        if backend + " fp32~torch" not in self.cols:
            self.skipTest("no %s backend in this build" % backend)
        self.assertLess(self.geomean(self.cols[backend + " fp32~torch"].values()), 1e-2,
                        "%s fp32 gradients against torch's" % backend)
        if backend + " bf16" not in self.cols:
            self.skipTest("%s has no bf16 kernels on this CPU" % backend)
        ours, theirs = self.cols[backend + " bf16"], self.cols["autocast"]
        g_ours, g_theirs = self.geomean(ours.values()), self.geomean(theirs.values())
        self.assertLess(g_ours, 1.2 * g_theirs, "%s bf16: geometric mean relative gradient error %.3g, autocast's %.3g"
                        % (backend, g_ours, g_theirs))
        for k in ours:
            self.assertLess(ours[k], 2.0 * theirs[k], "%s bf16: %s's gradient error %.3g, autocast's %.3g"
                            % (backend, k, ours[k], theirs[k]))

    def test_ref_bf16_gradients_as_close_as_autocast(self):
        self.check("ref")

    def test_onednn_bf16_gradients_as_close_as_autocast(self):
        self.check("onednn")


if __name__ == "__main__":
    unittest.main(verbosity=2)
