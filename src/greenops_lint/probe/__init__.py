"""The runtime probe: measure what a finding really costs, before and after the fix.

(In progress.)
"""
