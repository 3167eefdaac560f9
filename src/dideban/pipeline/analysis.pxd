cimport cython

# Declarations for the compiled analysis.py (Cython reads this file beside the .py; Python
# never does). The helpers the analysis calls once or more per measurement are `cpdef`: inside
# the compiled module they are called as C functions, without a lookup in the module's globals
# and a Python call (-1.7% of instructions a measurement). No types are declared, so the code
# keeps Python's semantics; except in `_wc_facts`, whose dicts and sets are typed (each holds
# its exact class, as JSON decodes it: a subclass would raise TypeError there). Python code
# still calls them by name as before; but a test that replaces one of them in the module no
# longer changes what the analysis calls (patch the functions that are not listed here, as
# _web_connectivity). Helpers with a closure or a generator expression cannot be cpdef.

cpdef layer_scores(layer, probe_failure, control_ok)
cpdef _remember(table, key, fn)
cpdef is_bogon(ip)
cpdef _is_ip_text(text)
cpdef _any_bogon(addrs)
cpdef _host_scheme(url)
cpdef _plan(test_name)
cpdef _addresses(values)
cpdef _is_number(v)
cpdef _d(v)
cpdef _parse_time(text)
cpdef _time(doc)
cpdef _header_names(headers)
cpdef _uncommon(names)
cpdef _lower(name)
@cython.locals(d=dict)
cpdef bint _any_key(d, keys)
cpdef _same_page(final, ctrl)
cpdef _test_name(doc)
cpdef _probe_cc(doc)
cpdef _input(doc)
cpdef _verdict(raw, doc, inp_s, test_name, cc, anomaly, confirmed, failure, blocking_type, s_dns, s_tcp, s_tls, s_http, fp_names, rules, probe_blocking, probe_accessible, disagrees)
# The web_connectivity logic with its dicts and sets typed (exact classes: JSON's own).
@cython.locals(tk=dict, control=dict, c_dns=dict, c_http=dict, facts=set, p_addrs=set,
               c_addrs=set, reqs=list, dns_obs=list, tls=list)
cpdef _wc_facts(tk, ex, url)
