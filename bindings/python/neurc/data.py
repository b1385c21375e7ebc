"""Images, PNG files, datasets (class folders, CSV manifests, IDX pairs), transforms,
splits and the threaded loader."""

from collections import namedtuple
from ctypes import byref, c_int, c_void_p

from . import _buffers as B
from ._lib import call_interruptible, encode, decode, lib, nc_batch, nc_dataset_options, nc_loader_options, nc_png_limits
from .core import _ContextObject, _ctx_of


def _limits(max_width=None, max_height=None, max_pixels=None):
    lim = nc_png_limits()
    lib.nc_png_limits_init(byref(lim))
    if max_width is not None:
        lim.max_width = max_width
    if max_height is not None:
        lim.max_height = max_height
    if max_pixels is not None:
        lim.max_pixels = max_pixels
    return lim


class Image(_ContextObject):
    """A planar (channels, height, width) float32 image with values in [0, 1]."""

    _kind = "image"

    def __init__(self, channels, height, width, context=None):
        ctx = _ctx_of(context)
        self.context = ctx
        h = c_void_p()
        self._check(lib.nc_image_create(ctx._h, channels, height, width, byref(h)), "nc_image_create")
        self._own(h.value, lib.nc_image_destroy, [ctx])

    @classmethod
    def _wrap(cls, handle, ctx):
        self = cls.__new__(cls)
        self.context = ctx
        self._own(handle, lib.nc_image_destroy, [ctx])
        return self

    @classmethod
    def from_array(cls, values, context=None):
        """An image holding a copy of a (channels, height, width) array."""
        buf = B.as_input(values, "values", "f")
        if len(buf.shape) == 2:
            shape = (1,) + buf.shape
        elif len(buf.shape) == 3:
            shape = buf.shape
        else:
            raise ValueError("values must be (channels, height, width) or (height, width), got %s" % (buf.shape,))
        img = cls(*shape, context=context)
        if buf.count:
            import ctypes
            ctypes.memmove(lib.nc_image_data(img._h), buf.address, 4 * buf.count)
        return img

    @property
    def width(self):
        return lib.nc_image_width(self._h)

    @property
    def height(self):
        return lib.nc_image_height(self._h)

    @property
    def channels(self):
        return lib.nc_image_channels(self._h)

    @property
    def shape(self):
        return (self.channels, self.height, self.width)

    @property
    def bit_depth(self):
        """8 or 16 for a decoded file, 0 for an image made in memory."""
        return lib.nc_image_bit_depth(self._h)

    def to_array(self):
        """A copy of the pixels, (channels, height, width)."""
        shape = self.shape
        return B.from_address(lib.nc_image_const_data(self._h), shape[0] * shape[1] * shape[2], "f", shape)

    def __repr__(self):
        return "<neurc.Image closed>" if self.closed else "<neurc.Image %dx%dx%d>" % self.shape

    def save_png(self, path, bit_depth=8):
        """Writes the image as an 8- or 16-bit PNG (atomically)."""
        self._check(lib.nc_png_write(self.context._h, encode(path, "path"), self._h, bit_depth), "nc_png_write")


def read_png(path, context=None, **limits):
    """Decodes a PNG file into an Image; limits: max_width, max_height, max_pixels."""
    ctx = _ctx_of(context)
    lim = _limits(**limits)
    h = c_void_p()
    st = lib.nc_png_read(ctx._h, encode(path, "path"), byref(lim), byref(h))
    _raise(st, ctx, "nc_png_read")
    return Image._wrap(h.value, ctx)


def read_png_bytes(data, context=None, **limits):
    """Decodes PNG bytes (any buffer) into an Image."""
    ctx = _ctx_of(context)
    mv = memoryview(data).cast("B")
    lim = _limits(**limits)
    keep = bytes(mv)
    h = c_void_p()
    st = lib.nc_png_read_memory(ctx._h, keep, len(keep), byref(lim), byref(h))
    _raise(st, ctx, "nc_png_read_memory")
    return Image._wrap(h.value, ctx)


def _raise(st, ctx, fn):
    if st != 0:
        from ._lib import raise_status
        raise_status(st, ctx._h, fn)


class Dataset(_ContextObject):
    """Labelled images. Open with Dataset.folder(root), Dataset.csv(manifest, ...) or
    Dataset.idx(images, labels)."""

    _kind = "dataset"

    def __init__(self, *a, **k):
        raise TypeError("use Dataset.folder(), Dataset.csv() or Dataset.idx()")

    @classmethod
    def _open(cls, fn, ctx, *args):
        self = cls.__new__(cls)
        self.context = ctx
        h = c_void_p()
        self._check(call_interruptible(getattr(lib, fn), ctx._h, *args, byref(h)), fn)
        self._own(h.value, lib.nc_dataset_destroy, [ctx])
        return self

    @staticmethod
    def _options(image_columns=None, optional_column=None, label_columns=None, base_dir=None, **limits):
        opt = nc_dataset_options()
        lib.nc_dataset_options_init(byref(opt))
        lim = _limits(**limits)
        opt.limits = lim

        def join(v, what):
            if v is None or isinstance(v, (str, bytes)):
                return encode(v, what)
            return encode(",".join(v), what)
        keep = [join(image_columns, "image_columns"), encode(optional_column, "optional_column"),
                join(label_columns, "label_columns"), encode(base_dir, "base_dir")]
        opt.image_columns, opt.optional_column, opt.label_columns, opt.base_dir = keep
        return opt, keep

    @classmethod
    def folder(cls, root, context=None, **limits):
        """One subfolder per class with PNG files inside (torchvision ImageFolder order)."""
        opt, keep = cls._options(**limits)
        return cls._open("nc_dataset_open_folder", _ctx_of(context), encode(root, "root"), byref(opt))

    @classmethod
    def csv(cls, manifest, context=None, image_columns=None, optional_column=None, label_columns=None,
            base_dir=None, **limits):
        """A CSV manifest (docs/data.md); columns as lists or comma-separated strings."""
        opt, keep = cls._options(image_columns, optional_column, label_columns, base_dir, **limits)
        return cls._open("nc_dataset_open_csv", _ctx_of(context), encode(manifest, "manifest"), byref(opt))

    @classmethod
    def idx(cls, images, labels, context=None):
        """An MNIST-style IDX pair (gzip or plain)."""
        return cls._open("nc_dataset_open_idx", _ctx_of(context), encode(images, "images"), encode(labels, "labels"))

    def __len__(self):
        return lib.nc_dataset_size(self._h)

    @property
    def num_heads(self):
        return lib.nc_dataset_num_heads(self._h)

    def num_classes(self, head=0):
        return lib.nc_dataset_num_classes(self._h, head)

    def class_names(self, head=0):
        return [decode(lib.nc_dataset_class_name(self._h, head, k)) for k in range(self.num_classes(head))]

    @property
    def channels(self):
        return lib.nc_dataset_channels(self._h)

    def path(self, i):
        p = lib.nc_dataset_path(self._h, i)
        if p is None:
            raise IndexError("sample %d out of range (dataset of %d)" % (i, len(self)))
        return decode(p)

    def labels(self, i):
        """The labels of sample i, one per head (a list)."""
        o = B.output((max(self.num_heads, 1),), "i")
        self._check(lib.nc_dataset_labels(self._h, i, o.address), "nc_dataset_labels")
        r = B.result(o)
        return [int(v) for v in r]

    def __getitem__(self, i):
        """(image array (c, h, w), labels list) of sample i."""
        if i < 0:
            i += len(self)
        with self.get(i) as img:
            return img.to_array(), self.labels(i)

    def get(self, i):
        """Decodes sample i into an Image."""
        h = c_void_p()
        self._check(lib.nc_dataset_get(self._h, i, byref(h)), "nc_dataset_get")
        return Image._wrap(h.value, self.context)

    def class_counts(self, head=0):
        k = self.num_classes(head)
        o = B.output((max(k, 1),), "q")
        self._check(lib.nc_dataset_class_counts(self._h, head, o.address), "nc_dataset_class_counts")
        return [int(v) for v in B.result(o)][:k]

    def class_weights(self, head=0):
        """n / (num_classes * count) per class ("balanced")."""
        k = self.num_classes(head)
        o = B.output((max(k, 1),), "f")
        self._check(lib.nc_dataset_class_weights(self._h, head, o.address), "nc_dataset_class_weights")
        return [float(v) for v in B.result(o)][:k]

    def channel_stats(self, indices=None, transform=None):
        """Per-channel (mean, std) lists over the samples `indices` (all when None)."""
        c = self.channels
        mean, std = B.output((c,), "f"), B.output((c,), "f")
        idx = B.as_input(indices, "indices", "q") if indices is not None else None
        self._check(call_interruptible(lib.nc_dataset_channel_stats, self._h, idx.address if idx else None,
                                       idx.count if idx else 0, transform._h if transform is not None else None,
                                       mean.address, std.address), "nc_dataset_channel_stats")
        return [float(v) for v in B.result(mean)], [float(v) for v in B.result(std)]


class Transform(_ContextObject):
    """An image pipeline; the add_* methods return the transform, so they chain."""

    _kind = "transform"

    def __init__(self, context=None):
        ctx = _ctx_of(context)
        self.context = ctx
        h = c_void_p()
        self._check(lib.nc_transform_create(ctx._h, byref(h)), "nc_transform_create")
        self._own(h.value, lib.nc_transform_destroy, [ctx])

    @classmethod
    def _preset(cls, fn, ctx, *args, channels, mean, std):
        self = cls.__new__(cls)
        self.context = ctx
        m = s = None
        if mean is not None or std is not None:
            if mean is None or std is None:
                raise ValueError("give both mean and std, or neither")
            m, s = B.as_input(mean, "mean", "f"), B.as_input(std, "std", "f")
            if m.count != channels or s.count != channels:
                raise ValueError("mean and std need %d values each" % channels)
        h = c_void_p()
        self._check(getattr(lib, fn)(ctx._h, *args, channels, m.address if m else None, s.address if s else None,
                                     byref(h)), fn)
        self._own(h.value, lib.nc_transform_destroy, [ctx])
        return self

    @classmethod
    def train_preset(cls, size, channels, mean=None, std=None, context=None):
        """The training recipe of nc_transform_preset_train."""
        return cls._preset("nc_transform_preset_train", _ctx_of(context), size, channels=channels, mean=mean,
                           std=std)

    @classmethod
    def eval_preset(cls, resize, size, channels, mean=None, std=None, context=None):
        """Resize(resize), CenterCrop(size), normalize."""
        return cls._preset("nc_transform_preset_eval", _ctx_of(context), resize, size, channels=channels, mean=mean,
                           std=std)

    def _add(self, fn, *args):
        self._check(getattr(lib, fn)(self._h, *args), fn)
        return self

    def resize(self, height, width=0):
        return self._add("nc_transform_add_resize", height, width)

    def center_crop(self, height, width=None):
        return self._add("nc_transform_add_center_crop", height, height if width is None else width)

    def random_resized_crop(self, height, width=None, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        return self._add("nc_transform_add_random_resized_crop", height, height if width is None else width,
                         scale[0], scale[1], ratio[0], ratio[1])

    def hflip(self, p=0.5):
        return self._add("nc_transform_add_hflip", p)

    def vflip(self, p=0.5):
        return self._add("nc_transform_add_vflip", p)

    def rotation(self, degrees):
        return self._add("nc_transform_add_rotation", degrees)

    def affine(self, translate=(0.0, 0.0), scale=(1.0, 1.0)):
        return self._add("nc_transform_add_affine", translate[0], translate[1], scale[0], scale[1])

    def color_jitter(self, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0):
        return self._add("nc_transform_add_color_jitter", brightness, contrast, saturation, hue)

    def random_erasing(self, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0):
        return self._add("nc_transform_add_random_erasing", p, scale[0], scale[1], ratio[0], ratio[1], value)

    def normalize(self, mean, std):
        m, s = B.as_input(mean, "mean", "f"), B.as_input(std, "std", "f")
        if m.count != s.count:
            raise ValueError("mean and std differ in length (%d, %d)" % (m.count, s.count))
        return self._add("nc_transform_add_normalize", m.address, s.address, m.count)

    def exact(self, on=True):
        """Exact mode: every step on its own as torchvision applies them (the default,
        fused mode samples the geometric steps once; see docs/data.md)."""
        return self._add("nc_transform_set_exact", 1 if on else 0)

    def output_size(self, height, width):
        """(height, width) of the output for an input of height x width."""
        oh, ow = c_int(), c_int()
        self._check(lib.nc_transform_output_size(self._h, height, width, byref(oh), byref(ow)),
                    "nc_transform_output_size")
        return oh.value, ow.value

    def apply(self, image, seed=0, epoch=0, index=0):
        """A new Image: the pipeline applied to `image` (an Image or a (c, h, w) array)."""
        own = not isinstance(image, Image)
        img = Image.from_array(image, self.context) if own else image
        try:
            h = c_void_p()
            self._check(lib.nc_transform_apply(self._h, self.context._h, img._h, seed, epoch, index, byref(h)),
                        "nc_transform_apply")
            return Image._wrap(h.value, self.context)
        finally:
            if own:
                img.close()


def split_stratified(labels, train=0.7, val=0.15, test=0.15, seed=0, context=None):
    """Stratified split of integer labels: a list/array of 0 (train), 1 (val), 2 (test)."""
    ctx = _ctx_of(context)
    lab = B.as_input(labels, "labels", "i")
    o = B.output((lab.count,), "b")
    _raise(lib.nc_split_stratified(ctx._h, lab.address, lab.count, train, val, test, seed, o.address), ctx,
           "nc_split_stratified")
    return B.result(o)


def split_kfold(labels, k=5, seed=0, context=None):
    """Stratified k-fold: the fold (0..k-1) of every sample."""
    ctx = _ctx_of(context)
    lab = B.as_input(labels, "labels", "i")
    o = B.output((lab.count,), "i")
    _raise(lib.nc_split_kfold(ctx._h, lab.address, lab.count, k, seed, o.address), ctx, "nc_split_kfold")
    return B.result(o)


Batch = namedtuple("Batch", "x labels indices")


class Loader(_ContextObject):
    """Batches of a Dataset (through an optional Transform) decoded by worker threads.
    Iterating a loader yields the Batch(x, labels, indices) of one epoch (copies);
    loader.epoch(e) iterates epoch e."""

    _kind = "loader"

    def __init__(self, dataset, transform=None, batch_size=32, shuffle=True, drop_last=False, workers=2,
                 prefetch=2, seed=0, indices=None):
        if not isinstance(dataset, Dataset):
            raise TypeError("dataset must be a neurc.Dataset")
        if transform is not None and not isinstance(transform, Transform):
            raise TypeError("transform must be a neurc.Transform or None")
        self.dataset, self.transform, self.context = dataset, transform, dataset.context
        opt = nc_loader_options()
        lib.nc_loader_options_init(byref(opt))
        opt.batch_size, opt.shuffle, opt.drop_last = batch_size, 1 if shuffle else 0, 1 if drop_last else 0
        opt.workers, opt.prefetch, opt.seed = workers, prefetch, seed
        idx = None
        if indices is not None:
            idx = B.as_input(indices, "indices", "q")
            opt.indices, opt.num_indices = idx.address, idx.count
        self.num_samples = idx.count if idx is not None else len(dataset)
        h = c_void_p()
        self._check(lib.nc_loader_create(dataset._h, transform._h if transform is not None else None, byref(opt),
                                         byref(h)), "nc_loader_create")
        self._own(h.value, lib.nc_loader_destroy, [dataset, transform])
        self._epoch = 0

    def __len__(self):
        """Batches per epoch."""
        return lib.nc_loader_num_batches(self._h)

    @property
    def num_batches(self):
        return len(self)

    def start_epoch(self, epoch):
        self._check(lib.nc_loader_start_epoch(self._h, epoch), "nc_loader_start_epoch")
        self._epoch = epoch

    def next(self):
        """The next Batch of the epoch, or None at its end."""
        b = nc_batch()
        self._check(lib.nc_loader_next(self._h, byref(b)), "nc_loader_next")
        if b.n == 0:
            return None
        x = B.from_address(b.x, b.n * b.c * b.h * b.w, "f", (b.n, b.c, b.h, b.w))
        labels = B.from_address(b.labels, b.n * b.heads, "i", (b.n, b.heads))
        indices = B.from_address(b.indices, b.n, "q", (b.n,))
        return Batch(x, labels, indices)

    def epoch(self, epoch):
        """Iterates the batches of epoch `epoch`."""
        self.start_epoch(epoch)
        while True:
            b = self.next()
            if b is None:
                return
            yield b

    def __iter__(self):
        return self.epoch(self._epoch)
