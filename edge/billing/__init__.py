"""Money rules: who may start and the hold at start, the running cost, settlement at stop (`sessions`); the
double-entry ledger (`ledger`), cards and accounts (`cards`), tariffs (`tariff`), the owner's account
management (`owner`) and the reports (`reports`)."""
