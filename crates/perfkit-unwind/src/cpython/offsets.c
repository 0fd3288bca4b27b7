/* The source of the per-version tables in offsets.rs (CPython 3.8 to 3.12,
 * x86-64): offsetof() over CPython's own headers, internal ones included.
 * Not built by cargo. To check or extend a table, for a CPython installed
 * under PREFIX with version M (say 3.12):
 *
 *   gcc -w -IPREFIX/include/pythonM -IPREFIX/include/pythonM/internal \
 *       offsets.c -o offsets && ./offsets
 *
 * 3.13 publishes the same numbers itself in _PyRuntime.debug_offsets.
 */
#define Py_BUILD_CORE 1
#include "Python.h"
#include "frameobject.h"
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h"
#endif
#include "internal/pycore_pystate.h"
#if PY_VERSION_HEX >= 0x03090000
#include "internal/pycore_interp.h"
#include "internal/pycore_runtime.h"
#endif
#include <stddef.h>
#include <stdio.h>
#define P(name, expr) printf("%s %zu\n", name, (size_t)(expr))
int main(void){
 P("runtime.interpreters_head", offsetof(_PyRuntimeState, interpreters.head));
 P("interp.next", offsetof(PyInterpreterState, next));
#if PY_VERSION_HEX >= 0x030B0000
 P("interp.threads_head", offsetof(PyInterpreterState, threads.head));
#else
 P("interp.threads_head", offsetof(PyInterpreterState, tstate_head));
#endif
 P("tstate.next", offsetof(PyThreadState, next));
 P("tstate.interp", offsetof(PyThreadState, interp));
#if PY_VERSION_HEX >= 0x030D0000
 P("tstate.current_frame", offsetof(PyThreadState, current_frame));
#elif PY_VERSION_HEX >= 0x030B0000
 P("tstate.cframe", offsetof(PyThreadState, cframe));
 P("cframe.current_frame", offsetof(_PyCFrame, current_frame));
#else
 P("tstate.frame", offsetof(PyThreadState, frame));
#endif
 P("tstate.thread_id", offsetof(PyThreadState, thread_id));
#if PY_VERSION_HEX >= 0x030B0000
 P("tstate.native_thread_id", offsetof(PyThreadState, native_thread_id));
#endif
#if PY_VERSION_HEX >= 0x030B0000
 P("iframe.previous", offsetof(_PyInterpreterFrame, previous));
#if PY_VERSION_HEX >= 0x030D0000
 P("iframe.code", offsetof(_PyInterpreterFrame, f_executable));
 P("iframe.instr", offsetof(_PyInterpreterFrame, instr_ptr));
#else
 P("iframe.code", offsetof(_PyInterpreterFrame, f_code));
 P("iframe.instr", offsetof(_PyInterpreterFrame, prev_instr));
#endif
 P("iframe.owner", offsetof(_PyInterpreterFrame, owner));
#if PY_VERSION_HEX < 0x030C0000
 P("iframe.is_entry", offsetof(_PyInterpreterFrame, is_entry));
#endif
 P("code.co_code_adaptive", offsetof(PyCodeObject, co_code_adaptive));
 P("code.qualname", offsetof(PyCodeObject, co_qualname));
 P("code.linetable", offsetof(PyCodeObject, co_linetable));
#else
 P("frame.f_back", offsetof(PyFrameObject, f_back));
 P("frame.f_code", offsetof(PyFrameObject, f_code));
 P("frame.f_lasti", offsetof(PyFrameObject, f_lasti));
 P("code.co_code", offsetof(PyCodeObject, co_code));
#if PY_VERSION_HEX >= 0x030A0000
 P("code.linetable", offsetof(PyCodeObject, co_linetable));
#else
 P("code.linetable", offsetof(PyCodeObject, co_lnotab));
#endif
#endif
 P("code.filename", offsetof(PyCodeObject, co_filename));
 P("code.name", offsetof(PyCodeObject, co_name));
 P("code.firstlineno", offsetof(PyCodeObject, co_firstlineno));
 P("code.size", sizeof(PyCodeObject));
 P("ob_type", offsetof(PyObject, ob_type));
 P("bytes.ob_size", offsetof(PyVarObject, ob_size));
 P("bytes.ob_sval", offsetof(PyBytesObject, ob_sval));
 P("ascii.size", sizeof(PyASCIIObject));
 P("compact.size", sizeof(PyCompactUnicodeObject));
 P("ascii.length", offsetof(PyASCIIObject, length));
 P("ascii.state", offsetof(PyASCIIObject, state));
 return 0;
}
