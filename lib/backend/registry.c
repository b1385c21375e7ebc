/* registry.c — which backends this build contains. The oneDNN and CUDA backends
 * are build options (meson `onednn`, `cudnn`); absent ones return NULL so that
 * NC_BACKEND_AUTO falls back to the reference backend. */
#include "backend/backend.h"
#include "nc_config.h"

#if !HAVE_ONEDNN
const nc__backend *nc__backend_onednn(void) { return NULL; }
#endif
#if !HAVE_CUDNN
const nc__backend *nc__backend_cuda(void) { return NULL; }
#endif
