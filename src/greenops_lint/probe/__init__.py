"""The runtime probe: measure what a finding really costs, before and after the fix.

`greenops-lint probe PATH` builds a micro-benchmark per finding (`plans`), runs
its variants in forked processes of a server that imported torch once
(`server`, `benches`, `measure`), alternating A B B A, and checks the
finding's estimate, recomputed for the detected hardware, against a bootstrap
interval of the measured figure (`runner`, `stats`). `--run CMD` does the same
for the user's own command on temporary copies of the project (`script`).
torch is imported only inside the server, never by the CLI process.
"""
