"""The site database's schema, as numbered migrations: each runs once, in order, in one transaction
(`edge.store.sqlite.migrate`); the schema version is SQLite's `user_version`. Never edit an applied one: add
the next."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: chargers, connector status, transactions, meter values, the upstream queue, auth cache, journal
    """
    CREATE TABLE chargers (
        id TEXT PRIMARY KEY,
        ocpp_version TEXT,
        vendor TEXT, model TEXT, serial TEXT, firmware TEXT,
        first_seen TEXT, last_seen TEXT, last_boot TEXT,
        connected INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE connector_status (
        charger_id TEXT NOT NULL, evse_id INTEGER NOT NULL, connector_id INTEGER NOT NULL,
        status TEXT NOT NULL, error_code TEXT, timestamp TEXT,
        PRIMARY KEY (charger_id, evse_id, connector_id)
    );
    CREATE TABLE transactions (
        id INTEGER PRIMARY KEY,              -- the edge's own id (what a 1.6 charger is given)
        charger_id TEXT NOT NULL,
        tx_key TEXT NOT NULL,                -- 1.6: str(id); 2.0.1: the charger's transactionId
        ocpp_version TEXT NOT NULL,
        evse_id INTEGER, connector_id INTEGER,
        id_tag TEXT,
        meter_start INTEGER, meter_stop INTEGER, energy_wh INTEGER,
        started_at TEXT, stopped_at TEXT, stop_reason TEXT,
        started_offline INTEGER NOT NULL DEFAULT 0,
        upstream_tx_id INTEGER,              -- 1.6 proxy: upstream's id for this transaction
        upstream_status TEXT,                -- 1.6 proxy: upstream's idTagInfo status at start
        boot_id TEXT, clock_synced INTEGER NOT NULL DEFAULT 0,
        UNIQUE (charger_id, tx_key)
    );
    CREATE TABLE meter_values (
        id INTEGER PRIMARY KEY,
        charger_id TEXT NOT NULL, tx_key TEXT, connector_id INTEGER,
        timestamp TEXT, measurand TEXT, phase TEXT, unit TEXT, context TEXT, value TEXT
    );
    CREATE INDEX meter_values_tx ON meter_values (charger_id, tx_key);
    CREATE TABLE upstream_queue (
        charger_id TEXT NOT NULL,
        seq INTEGER NOT NULL,                -- per charger, in the order upstream must see them
        msg_id TEXT NOT NULL,
        action TEXT NOT NULL,
        frame TEXT NOT NULL,                 -- the charger's original text
        tx_id INTEGER,                       -- 1.6: the edge's transaction id the frame refers to
        created TEXT NOT NULL,
        PRIMARY KEY (charger_id, seq)
    );
    CREATE TABLE replay_state (              -- latest Boot and Status frames to send first on reconnect
        charger_id TEXT NOT NULL, key TEXT NOT NULL, frame TEXT NOT NULL, pending INTEGER NOT NULL,
        PRIMARY KEY (charger_id, key)
    );
    CREATE TABLE auth_cache (
        id_tag TEXT PRIMARY KEY, status TEXT NOT NULL, expires TEXT, info TEXT, updated TEXT NOT NULL
    );
    CREATE TABLE journal (
        id INTEGER PRIMARY KEY,
        charger_id TEXT NOT NULL, ts TEXT NOT NULL,
        direction TEXT NOT NULL,             -- 'c>e' charger to edge, 'e>c', 'e>u', 'u>e'; 'c>u'/'u>c':
                                             -- passed through unchanged
        frame TEXT NOT NULL
    );
    CREATE INDEX journal_charger ON journal (charger_id, id);
    """,
    # 2: billing: accounts (the site's registered users), cards, the append-only ledger, session billing
    """
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL, phone TEXT, email TEXT,
        created TEXT NOT NULL,
        blocked INTEGER NOT NULL DEFAULT 0,
        balance_minor INTEGER NOT NULL DEFAULT 0,  -- Σ posted entries, kept by ledger.post (same commit)
        held_minor INTEGER NOT NULL DEFAULT 0      -- Σ open holds, kept by ledger.post
    );
    CREATE TABLE cards (
        uid TEXT PRIMARY KEY,                -- upper-case hex of the UID bytes
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        kind TEXT NOT NULL CHECK (kind IN ('personal', 'commercial')),
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked', 'lost')),
        chargers TEXT,                       -- JSON list: the chargers a personal card may use; NULL: all
        created TEXT NOT NULL, updated TEXT NOT NULL, last_used TEXT,
        list_version INTEGER NOT NULL DEFAULT 0  -- the local-list version in which it last changed
    );
    CREATE INDEX cards_account ON cards (account_id);
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        kind TEXT NOT NULL CHECK (kind IN ('topup', 'hold', 'capture', 'release', 'refund', 'adjustment')),
        amount_minor INTEGER NOT NULL,       -- hold/capture/release: positive; adjustment: signed
        currency TEXT NOT NULL,
        session_id INTEGER REFERENCES transactions (id),
        key TEXT NOT NULL UNIQUE,            -- idempotency key, derived from what caused the entry
        note TEXT,
        created TEXT NOT NULL
    );
    CREATE INDEX ledger_account ON ledger (account_id, kind);
    CREATE INDEX ledger_session ON ledger (session_id);
    ALTER TABLE transactions ADD COLUMN account_id INTEGER;
    ALTER TABLE transactions ADD COLUMN card_kind TEXT;
    ALTER TABLE transactions ADD COLUMN hold_minor INTEGER;
    ALTER TABLE transactions ADD COLUMN cost_minor INTEGER;
    ALTER TABLE transactions ADD COLUMN captured_minor INTEGER;
    ALTER TABLE transactions ADD COLUMN uncollected_minor INTEGER;
    ALTER TABLE transactions ADD COLUMN cost_detail TEXT;
    ALTER TABLE transactions ADD COLUMN billing_stop TEXT;  -- why the edge itself stopped the session
    ALTER TABLE transactions ADD COLUMN auth_status TEXT;   -- the edge's decision at start (a retry gets it)
    CREATE INDEX transactions_open_card ON transactions (id_tag) WHERE stopped_at IS NULL;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('local_list_version', '0');
    """,
    # 3: cloud sync: the outbox (written in the same transaction as the change), commands applied once,
    # tariffs replaced by the cloud
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the per-site sequence: gap-free, never reused
        key TEXT NOT NULL UNIQUE,            -- idempotency key of the record
        kind TEXT NOT NULL CHECK (kind IN ('session', 'ledger', 'card')),
        body TEXT NOT NULL,                  -- the record's fields (JSON)
        created TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'sent', 'done')),
        sent_at TEXT, done_at TEXT
    );
    CREATE INDEX outbox_state ON outbox (state, seq);
    CREATE TABLE applied_commands (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, ok INTEGER NOT NULL, error TEXT, applied_at TEXT NOT NULL
    );
    CREATE TABLE tariffs (
        id INTEGER PRIMARY KEY, valid_from TEXT NOT NULL, body TEXT NOT NULL, command_id TEXT,
        created TEXT NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('sync_last_ack', '0');
    """,
    # 4: taps of cards the site does not know, kept briefly so that an owner can enrol a card by tapping it
    """
    CREATE TABLE unknown_taps (
        id INTEGER PRIMARY KEY, uid TEXT NOT NULL, reader TEXT NOT NULL, at TEXT NOT NULL
    );
    """,
    # 5: the journal is written in batches, one row per charger per flush (a row a frame cost the proxy a
    # fifth of its CPU); frames: a JSON array of [ts, direction, frame], oldest first
    """
    CREATE TABLE journal_batches (
        id INTEGER PRIMARY KEY,
        charger_id TEXT NOT NULL,
        ts TEXT NOT NULL,                    -- the newest frame's time
        n INTEGER NOT NULL,
        frames TEXT NOT NULL
    );
    CREATE INDEX journal_batches_charger ON journal_batches (charger_id, id);
    INSERT INTO journal_batches (charger_id, ts, n, frames)
        SELECT charger_id, ts, 1, json_array(json_array(ts, direction, frame)) FROM journal ORDER BY id;
    DROP TABLE journal;
    """,
    # 6: what each applied cloud command said (a digest), so that one id re-sent with other content is refused
    """
    ALTER TABLE applied_commands ADD COLUMN digest TEXT;
    """,
    # 7: the HTTP API's bearer tokens (only their SHA-256) and the audit of operations on chargers
    """
    CREATE TABLE api_tokens (
        name TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'owner')),
        hash TEXT NOT NULL UNIQUE, created TEXT NOT NULL, last_used TEXT
    );
    CREATE TABLE operations (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        who TEXT NOT NULL,                   -- the token's name (or "cli" for the CLI on the Pi)
        charger_id TEXT NOT NULL,
        action TEXT NOT NULL,
        request TEXT NOT NULL,               -- the payload sent (JSON)
        status TEXT NOT NULL,                -- answered, callerror, not_connected, timeout
        response TEXT, error TEXT, problem TEXT, took_ms REAL
    );
    CREATE INDEX operations_charger ON operations (charger_id, id);
    """,
    # 8: firmware images the edge serves, file transfers (firmware updates, log uploads) and the charger's word
    # on each, reservations, and each 2.0.1 charger's device model (NotifyReport)
    """
    CREATE TABLE firmware (name TEXT PRIMARY KEY, size INTEGER NOT NULL, sha256 TEXT NOT NULL, added TEXT NOT NULL);
    CREATE TABLE file_transfers (
        id INTEGER PRIMARY KEY,              -- also the requestId sent to a 2.0.1 charger
        kind TEXT NOT NULL CHECK (kind IN ('firmware', 'log')),
        charger_id TEXT NOT NULL,
        secret TEXT NOT NULL UNIQUE,         -- the one-time part of the URL the charger downloads from / uploads to
        file TEXT,                           -- firmware: the image's name; log: the name the upload came with
        size INTEGER,                        -- log: bytes received
        status TEXT NOT NULL,                -- requested, then the charger's statuses (Downloading, Installed, ...)
        history TEXT NOT NULL DEFAULT '[]',  -- [[at, status], ...]
        who TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL, expires TEXT NOT NULL
    );
    CREATE INDEX file_transfers_charger ON file_transfers (charger_id, kind, id);
    CREATE TABLE reservations (
        id INTEGER PRIMARY KEY,              -- the reservationId / id sent to the charger
        charger_id TEXT NOT NULL, connector_id INTEGER NOT NULL, id_tag TEXT NOT NULL,
        expires TEXT NOT NULL,
        status TEXT NOT NULL,                -- requested, active (the charger accepted), used, cancelled, refused
        who TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL
    );
    CREATE INDEX reservations_at ON reservations (charger_id, connector_id, status);
    CREATE TABLE device_model (
        charger_id TEXT NOT NULL,
        key TEXT NOT NULL,                   -- COMPONENT.VARIABLE as the configuration intents name it (evse, instance)
        attribute TEXT NOT NULL,             -- Actual, Target, MinSet, MaxSet
        value TEXT, mutability TEXT, data_type TEXT, unit TEXT, updated TEXT NOT NULL,
        PRIMARY KEY (charger_id, key, attribute)
    );
    """,
    # 9: the owner backend's accounts (scrypt hashes), their login sessions (only a hash of each id is kept),
    # failed logins by name (for the lockout, known name or not), and the secret that signs session cookies
    """
    CREATE TABLE admins (
        name TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'owner')),
        password_hash TEXT NOT NULL, created TEXT NOT NULL, last_login TEXT
    );
    CREATE TABLE web_sessions (
        id_hash TEXT PRIMARY KEY, admin TEXT NOT NULL REFERENCES admins (name) ON DELETE CASCADE,
        csrf TEXT NOT NULL, created TEXT NOT NULL, expires TEXT NOT NULL
    );
    CREATE TABLE login_failures (name TEXT PRIMARY KEY, count INTEGER NOT NULL, last TEXT NOT NULL,
                                 locked_until TEXT);
    CREATE TABLE web_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 10: every change made through the owner backend: who, when, what, and the thing before and after
    """
    CREATE TABLE changes (
        id INTEGER PRIMARY KEY, at TEXT NOT NULL, who TEXT NOT NULL, what TEXT NOT NULL, subject TEXT NOT NULL,
        before TEXT, after TEXT
    );
    """,
    # 11: the owner's pages on a year of sessions: the newest first, a day's or a month's, a user's
    """
    CREATE INDEX transactions_started ON transactions (started_at);
    CREATE INDEX transactions_stopped ON transactions (stopped_at);
    CREATE INDEX transactions_account ON transactions (account_id, started_at);
    """,
    # 12: pay by QR: pay sessions (one busy per connector), the providers' webhook events (kept by event id
    # before they are applied), wallet PINs on accounts, holds made for a pay session before its charger starts
    # (ledger.pay_id), and payment records in the outbox (the table is rebuilt for its kind check; its
    # sequence is carried over, so the cloud's numbering goes on without a gap or a reuse)
    """
    ALTER TABLE accounts ADD COLUMN pin_hash TEXT;
    ALTER TABLE accounts ADD COLUMN pin_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN pin_locked_until TEXT;
    ALTER TABLE accounts ADD COLUMN made_by_pay INTEGER;  -- a wallet a QR Ph payment made: its pay session
    CREATE TABLE pay_sessions (
        id INTEGER PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,     -- SHA-256 of the secret in the driver's page address
        code TEXT NOT NULL UNIQUE,           -- the receipt code; the charger sees "PAY" + code as the id tag
        charger_id TEXT NOT NULL, connector_id INTEGER NOT NULL,
        method TEXT NOT NULL CHECK (method IN ('wallet', 'qrph')),
        state TEXT NOT NULL CHECK (state IN ('paying', 'starting', 'charging', 'done', 'failed', 'expired')),
        account_id INTEGER REFERENCES accounts (id),
        phone TEXT,                          -- QR Ph: the driver's phone, whose wallet the money goes to
        amount_minor INTEGER NOT NULL DEFAULT 0,  -- QR Ph: what the driver pays
        hold_minor INTEGER NOT NULL DEFAULT 0,
        provider_ref TEXT,                   -- QR Ph: the provider's payment intent id
        provider_qr TEXT,                    -- QR Ph: the QR code the provider gave (a data: URL), to show
        transaction_id INTEGER REFERENCES transactions (id),
        message TEXT,                        -- what the driver is told (why it failed, ...)
        created TEXT NOT NULL, updated TEXT NOT NULL,
        expires TEXT NOT NULL,               -- paying: the QR's end; starting: the charger's time to start
        history TEXT NOT NULL DEFAULT '[]'   -- [[at, state, message], ...]
    );
    CREATE UNIQUE INDEX pay_sessions_busy ON pay_sessions (charger_id, connector_id)
        WHERE state IN ('paying', 'starting', 'charging');
    CREATE INDEX pay_sessions_state ON pay_sessions (state, expires);
    CREATE INDEX pay_sessions_provider ON pay_sessions (provider_ref);
    CREATE INDEX pay_sessions_tx ON pay_sessions (transaction_id);
    CREATE TABLE pay_events (
        id TEXT PRIMARY KEY,                 -- "<provider>:<its event id>": a replay finds it and changes nothing
        provider TEXT NOT NULL, type TEXT NOT NULL,
        pay_session_id INTEGER REFERENCES pay_sessions (id),
        amount_minor INTEGER, body TEXT NOT NULL, received TEXT NOT NULL,
        outcome TEXT NOT NULL,               -- applied, ignored, unresolved (the owner decides), resolved
        note TEXT
    );
    CREATE INDEX pay_events_outcome ON pay_events (outcome, received);
    ALTER TABLE ledger ADD COLUMN pay_id INTEGER REFERENCES pay_sessions (id);
    CREATE INDEX ledger_pay ON ledger (pay_id) WHERE pay_id IS NOT NULL;
    CREATE TABLE outbox_new (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('session', 'ledger', 'card', 'payment')),
        body TEXT NOT NULL,
        created TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'sent', 'done')),
        sent_at TEXT, done_at TEXT
    );
    INSERT INTO outbox_new SELECT seq, key, kind, body, created, state, sent_at, done_at FROM outbox;
    DELETE FROM sqlite_sequence WHERE name = 'outbox_new';
    INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox_new', seq FROM sqlite_sequence WHERE name = 'outbox';
    DROP TABLE outbox;
    ALTER TABLE outbox_new RENAME TO outbox;
    CREATE INDEX outbox_state ON outbox (state, seq);
    """,
    # 13: a receipt code for every billed session (`/receipt/<code>`; a pay session's is its own code)
    """
    ALTER TABLE transactions ADD COLUMN receipt_code TEXT;
    CREATE UNIQUE INDEX transactions_receipt ON transactions (receipt_code) WHERE receipt_code IS NOT NULL;
    """,
    # 14: a card may have a validity end (UTC; answered Expired after it, with expiryDate before it)
    """
    ALTER TABLE cards ADD COLUMN expires TEXT;
    """,
    # 15: meter samples indexed session first: a 1.6 session's key is the edge's own increasing id, so the open
    # sessions' samples land in the index's last pages together (by charger first, each charger's open session
    # had a page of its own: a page written per charger per commit, what wears an SD card; bench/writes.py)
    """
    DROP INDEX meter_values_tx;
    CREATE INDEX meter_values_tx ON meter_values (tx_key, charger_id);
    """,
    # 16: a 2.0.1 device model report's parts (B08: NotifyReport with tbc until the last), by its requestId
    """
    CREATE TABLE device_reports (
        charger_id TEXT NOT NULL,
        request_id INTEGER NOT NULL,
        parts INTEGER NOT NULL,              -- NotifyReport messages received for it
        variables INTEGER NOT NULL,          -- variables they carried
        complete INTEGER NOT NULL,           -- the last part (tbc false) has come
        updated TEXT NOT NULL,
        PRIMARY KEY (charger_id, request_id)
    );
    """,
    # 17: a charger's standing (`ocpp.new_chargers`): NULL never decided, 'pending' waiting for the owner,
    # 'accepted' the site's; every charger seen before this migration was working here, so it stays accepted
    """
    ALTER TABLE chargers ADD COLUMN registration TEXT;
    UPDATE chargers SET registration = 'accepted';
    """,
    # 18: the journal in blocks: one row per background commit holding every charger's frames, compressed
    # (zlib JSON {charger: [[ts, direction, frame], ...]}; a block moved from journal_batches is plain JSON), and
    # `counts` {charger: frames} read without the frames; no index (reads and prunes walk blocks by id)
    """
    CREATE TABLE journal_blocks (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,                    -- the newest frame's time
        counts TEXT NOT NULL,
        n INTEGER NOT NULL,
        frames BLOB NOT NULL
    );
    INSERT INTO journal_blocks (id, ts, counts, n, frames)
        SELECT id, ts, json_object(charger_id, n), n, json_object(charger_id, json(frames))
        FROM journal_batches ORDER BY id;
    DROP TABLE journal_batches;
    """,
    # 19: an account whose cards are master passes (site attendants: they stop any session, start none)
    """
    ALTER TABLE accounts ADD COLUMN master_pass INTEGER NOT NULL DEFAULT 0;
    """,
    # 20: what an EV said it needs (2.0.1 NotifyEVChargingNeeds, ISO 15118), per EVSE: the current limits
    # (`edge.operations.current_limits`) keep its session within what it can take
    """
    CREATE TABLE ev_needs (
        charger_id TEXT NOT NULL,
        evse_id INTEGER NOT NULL,
        max_current_a REAL,                  -- the EV's maximum current (AC or DC), if it said
        energy_wh INTEGER,                   -- the energy it asks for, if it said
        departure TEXT,                      -- when it leaves, if it said
        updated TEXT NOT NULL,
        PRIMARY KEY (charger_id, evse_id)
    );
    """,
    # 21: a charger's own security profile: the least it must connect at (NULL: the site's), and the one the
    # owner asked it to move to, not yet seen (`edge.operations.security_profiles`)
    """
    ALTER TABLE chargers ADD COLUMN security_profile INTEGER;
    ALTER TABLE chargers ADD COLUMN security_upgrade INTEGER;
    """,
]
