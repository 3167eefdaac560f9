# The memory layout of the slot classes whose fields compiled code reads directly (C only: no
# Python object is declared here, so `_native` can cimport it without importing the classes).
#
# An instance of a class with `__slots__` (and no base with fields, no __dict__) is a
# PyObject_HEAD followed by one PyObject * per slot, in the order CPython lays them out: by
# name (it sorts __slots__). Read through a generic attribute lookup, a field costs ~165
# instructions from compiled code (the type's attribute cache, the member descriptor, its
# getter); read from the struct, one load. `_records.pxd` declares the classes on these
# structs for the compiled modules (`analysis.pxd`).
#
# Each class's slots are listed once, below (an X-macro gives the struct, the names and the
# offsets). `_native.check_layouts`, called when `analysis` is imported, checks them against
# the classes themselves: the same slot names at the same offsets, each an object slot, and
# the instance size; it raises ImportError otherwise (a field added, removed or renamed in
# the model must be mirrored here).

cdef extern from *:
    """
    #include <stddef.h>
    #if defined(__GNUC__)
    #define DIDEBAN_UNUSED __attribute__((unused))
    #else
    #define DIDEBAN_UNUSED
    #endif
    #define DIDEBAN_OBSERVATION_SLOTS(X, S) \\
        X(S, dns_answer) X(S, dns_engine) X(S, failure) X(S, fingerprints) X(S, hostname) \\
        X(S, http_body_length) X(S, http_request_url) X(S, http_status_code) \\
        X(S, http_title) X(S, ip) X(S, kind) X(S, measurement_uid) X(S, observation_idx) \\
        X(S, port) X(S, t) X(S, t0) X(S, tls_server_name) X(S, transaction_id)
    #define DIDEBAN_EXTRACTED_SLOTS(X, S) \\
        X(S, dns) X(S, http) X(S, matches) X(S, observations) X(S, tcp) X(S, tls)
    #define DIDEBAN_HTTP_EXCHANGE_SLOTS(X, S) \\
        X(S, body_length) X(S, failure) X(S, headers) X(S, status_code) X(S, title) X(S, url)
    #define DIDEBAN_MATCH_SLOTS(X, S) X(S, confirmed) X(S, fingerprint)
    #define DIDEBAN_RAW_MEASUREMENT_SLOTS(X, S) \\
        X(S, _doc) X(S, _text) X(S, index) X(S, line) X(S, path) X(S, uid) X(S, uid_derived) \\
        X(S, view)

    #define DIDEBAN_MEMBER(S, name) PyObject *name;
    #define DIDEBAN_NAME(S, name) #name,
    #define DIDEBAN_OFFSET(S, name) offsetof(S, name),
    /* The struct S, and its slots' names and offsets (each list ends with NULL, -1). */
    #define DIDEBAN_LAYOUT(S, SLOTS) \\
        typedef struct { PyObject_HEAD SLOTS(DIDEBAN_MEMBER, S) } S; \\
        static const char *const S##_names[] DIDEBAN_UNUSED = { SLOTS(DIDEBAN_NAME, S) NULL }; \\
        static const Py_ssize_t S##_offsets[] DIDEBAN_UNUSED = { SLOTS(DIDEBAN_OFFSET, S) -1 };

    DIDEBAN_LAYOUT(DidebanObservation, DIDEBAN_OBSERVATION_SLOTS)
    DIDEBAN_LAYOUT(DidebanExtracted, DIDEBAN_EXTRACTED_SLOTS)
    DIDEBAN_LAYOUT(DidebanHttpExchange, DIDEBAN_HTTP_EXCHANGE_SLOTS)
    DIDEBAN_LAYOUT(DidebanMatch, DIDEBAN_MATCH_SLOTS)
    DIDEBAN_LAYOUT(DidebanRawMeasurement, DIDEBAN_RAW_MEASUREMENT_SLOTS)
    """
    ctypedef struct DidebanObservation:
        pass
    ctypedef struct DidebanExtracted:
        pass
    ctypedef struct DidebanHttpExchange:
        pass
    ctypedef struct DidebanMatch:
        pass
    ctypedef struct DidebanRawMeasurement:
        pass
    const char *const DidebanObservation_names[]
    const Py_ssize_t DidebanObservation_offsets[]
    const char *const DidebanExtracted_names[]
    const Py_ssize_t DidebanExtracted_offsets[]
    const char *const DidebanHttpExchange_names[]
    const Py_ssize_t DidebanHttpExchange_offsets[]
    const char *const DidebanMatch_names[]
    const Py_ssize_t DidebanMatch_offsets[]
    const char *const DidebanRawMeasurement_names[]
    const Py_ssize_t DidebanRawMeasurement_offsets[]
