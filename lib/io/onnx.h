/* onnx.h — the seam between the ONNX export's checks (io/onnx.c, always built) and its
 * writer (io/onnx_write.c, built with protobuf-c: meson option `onnx`). */
#ifndef NC_IO_ONNX_H
#define NC_IO_ONNX_H

#include "neurc.h"

/* Opsets the export writes; the ops it emits (docs/onnx.md) are the same in all. */
#define NC__ONNX_OPSET_MIN 13
#define NC__ONNX_OPSET_MAX 17

/* Writes model m as ONNX to path atomically, options already checked (io/onnx.c);
 * the caller holds the model's read gate. */
nc_status nc__onnx_write(nc_model *m, const char *path, const nc_onnx_options *o);

#endif
