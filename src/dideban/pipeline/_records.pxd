# The slot classes the compiled analysis reads, declared on their C layout (`_layouts.pxd`):
# a variable typed with one of these in `analysis.pxd` reads a field as one load from the
# instance, not through a generic attribute lookup. Only the fields read are declared, each
# one that every instance has set (the classes' constructors, and `_native.SlotMaker`, set
# them all). A value of another class assigned to such a variable raises TypeError; None is
# let through, and `analysis` is compiled with `nonecheck`, so reading a field of None raises
# AttributeError as in Python. Importing a compiled module that cimports these imports the
# classes and checks their instance size (check_size error: ValueError if it changed).

from dideban.pipeline._layouts cimport (
    DidebanExtracted,
    DidebanHttpExchange,
    DidebanMatch,
    DidebanObservation,
    DidebanRawMeasurement,
)

cdef extern from *:
    ctypedef class dideban.model.verdict.Observation [object DidebanObservation, check_size error]:
        cdef readonly object failure
        cdef readonly object hostname
        cdef readonly object ip
        cdef readonly object port

    ctypedef class dideban.pipeline.observations.Extracted [object DidebanExtracted, check_size error]:
        cdef readonly object dns
        cdef readonly object http
        cdef readonly object matches
        cdef readonly object observations
        cdef readonly object tcp
        cdef readonly object tls

    ctypedef class dideban.pipeline.observations.HttpExchange [object DidebanHttpExchange, check_size error]:
        cdef readonly object body_length
        cdef readonly object failure
        cdef readonly object headers
        cdef readonly object status_code
        cdef readonly object title
        cdef readonly object url

    ctypedef class dideban.pipeline.fingerprints.Match [object DidebanMatch, check_size error]:
        cdef readonly object confirmed
        cdef readonly object fingerprint

    ctypedef class dideban.pipeline.readers.RawMeasurement [object DidebanRawMeasurement, check_size error]:
        cdef readonly object line
        cdef readonly object path
        cdef readonly object uid
        cdef readonly object view
