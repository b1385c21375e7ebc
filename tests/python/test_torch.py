"""The Python bindings against PyTorch (Debian's python3-torch): a graph made with
neurc.Builder and the same network in torch.nn, sharing weights by state_dict name, must
give the same logits, loss and SGD update. Skips cleanly without numpy or torch."""

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


if __name__ == "__main__":
    unittest.main(verbosity=2)
