cimport cython

from dideban.pipeline._records cimport Extracted, HttpExchange, Match, Observation, RawMeasurement

# Declarations for the compiled analysis.py (Cython reads this file beside the .py; Python
# never does). The helpers the analysis calls once or more per measurement are `cpdef`: inside
# the compiled module they are called as C functions, without a lookup in the module's globals
# and a Python call (-1.7% of instructions a measurement). Few types are declared, so the code
# keeps Python's semantics: the dicts and sets of `_wc_facts`, the measurement's envelope and
# test_keys, and the helpers' tables. Each holds its exact class, as JSON decodes it (a
# subclass would raise TypeError there); typed, `d.get(k)` is a C call, not a method looked up
# and called (~330 instructions each, ~20 a measurement). Python code
# still calls them by name as before; but a test that replaces one of them in the module no
# longer changes what the analysis calls (patch the functions that are not listed here, as
# _web_connectivity). Helpers with a closure or a generator expression cannot be cpdef.
#
# The records the analysis reads (the measurement, the extracted observations, exchanges and
# matches) are typed with their classes as `_records.pxd` declares them on their C layout: a
# field is one load from the instance, not a generic attribute lookup (~165 instructions; ~30
# a measurement, -2.2% of its instructions). `analysis.py` checks the layouts when imported;
# it is compiled with `nonecheck`, so a field of None raises AttributeError as in Python.

cpdef layer_scores(layer, probe_failure, control_ok)
cpdef _remember(dict table, key, fn)
cpdef is_bogon(ip)
cpdef _is_ip_text(text)
cpdef _any_bogon(addrs)
cpdef _host_scheme(url)
cpdef _plan(test_name)
cpdef _addresses(values)
cpdef _is_number(v)
cpdef _d(v)
cpdef _parse_time(text)
cpdef _time(dict doc)
cpdef _header_names(headers)
cpdef _uncommon(names)
cpdef _lower(name)
@cython.locals(d=dict)
cpdef bint _any_key(d, keys)
@cython.locals(final=HttpExchange)
cpdef _same_page(final, ctrl)
cpdef _test_name(dict doc)
cpdef _probe_cc(dict doc)
cpdef _input(dict doc)
@cython.locals(raw=RawMeasurement)
cpdef _verdict(raw, dict doc, inp_s, test_name, cc, anomaly, confirmed, failure, blocking_type, s_dns, s_tcp, s_tls, s_http, fp_names, rules, probe_blocking, probe_accessible, disagrees)
# The web_connectivity logic with its dicts and sets typed (exact classes: JSON's own).
@cython.locals(tk=dict, control=dict, c_dns=dict, c_http=dict, facts=set, p_addrs=set,
               c_addrs=set, reqs=list, dns_obs=list, tls=list, ex=Extracted, o=Observation,
               final=HttpExchange, m=Match)
cpdef _wc_facts(tk, ex, url)
@cython.locals(ex=Extracted, o=Observation, h=HttpExchange)
cpdef _im(name, tk, ex)
# The measurement's envelope and its test_keys (readers.measurement_of hands on an exact dict).
@cython.locals(doc=dict, tk=dict, raw=RawMeasurement, ex=Extracted, m=Match)
cpdef _analyze(raw, fpdb)
