#!/usr/bin/env node
/**
 * An independent OCPP charger for sitekeeper's tests: ocpp-rpc's RPCClient in strict mode, which checks
 * every CALL it sends and every CALLRESULT it receives against the official OCPP JSON schemas.
 *
 * Usage: node charger.js URL CHARGER_ID ocpp1.6|ocpp2.0.1 SCENARIO
 *   URL is the edge's charger endpoint (ws://host:port/ocpp); ocpp-rpc appends the charger id.
 *
 * Every scenario sends BootNotification the moment the WebSocket opens, as charger firmware does, then:
 *   session  Status, Heartbeat, Authorize, DataTransfer and one full charging session
 *            (1.6: Start/MeterValues/Stop; 2.0.1: TransactionEvent Started/Updated/Ended).
 *            Every call must be answered with a schema-valid CALLRESULT.
 *   canary   Heartbeat, then a DataTransfer whose answer the test's upstream makes violate the schema:
 *            that call must be rejected by strict validation (proof that validation is switched on).
 *   operated answer the CSMS's operations (Reset, UnlockConnector, ..., start and stop) until a DataTransfer
 *            comes; strict validation checks every one of those inbound CALLs against its schema.
 *
 * Output: one JSON object per line on stdout:
 *   {"type":"open","protocol":...}            the handshake is done and the Boot CALL is on the wire
 *   {"type":"result","action":...,"id":...,"request":{...},"response":{...}}      a CALLRESULT
 *   {"type":"error","action":...,"id":...,"request":{...},"code":...,"message":...,"strict":bool}
 *   {"type":"strictValidationFailure",...}, {"type":"badMessage",...}, {"type":"inboundCall",...},
 *   {"type":"disconnect",...}, then {"type":"done"} or {"type":"fatal","message":...}.
 * `id` is the message id ocpp-rpc gave the CALL. Exit status 0 only if the scenario went as expected.
 */
'use strict';

const { setTimeout: sleep } = require('node:timers/promises');
const { RPCClient } = require('ocpp-rpc');

const ENERGY = 'Energy.Active.Import.Register';

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function now() {
    return new Date().toISOString();
}

class Charger {
    constructor(client) {
        this.client = client;
        this.lastCallId = null;
        this.strictFailures = [];
        this.problems = [];
        client.on('call', ({ outbound, payload }) => {
            if (outbound) {
                this.lastCallId = payload[1];
            } else {
                emit({ type: 'inboundCall', id: payload[1], action: payload[2], request: payload[3] });
            }
        });
        client.on('strictValidationFailure', (ev) => {
            this.strictFailures.push(ev);
            emit({
                type: 'strictValidationFailure', id: ev.messageId, action: ev.method, outbound: ev.outbound,
                isCall: ev.isCall, result: ev.result, message: ev.error.message,
            });
        });
        client.on('badMessage', ({ buffer, error }) => {
            this.problems.push(`bad message: ${error.message}`);
            emit({ type: 'badMessage', message: error.message, frame: buffer.toString('utf8') });
        });
        client.on('disconnect', ({ code, reason }) => {
            emit({ type: 'disconnect', code, reason: String(reason) });
        });
    }

    /** Make a CALL; a rejection is a failure unless `expectFailure`. Returns the response (or the error). */
    async call(action, request, { expectFailure = false } = {}) {
        this.lastCallId = null;
        let response;
        try {
            response = await this.client.call(action, request);
        } catch (err) {
            const id = this.lastCallId; // null if strict validation stopped our own CALL before sending
            const strict = this.strictFailures.some((f) => f.messageId === id && !f.outbound);
            const code = err.rpcErrorCode ?? err.name;
            emit({ type: 'error', action, id, request, code, message: err.message, strict });
            if (!expectFailure) {
                throw new Error(`${action} failed: ${code}: ${err.message}`);
            }
            return err;
        }
        emit({ type: 'result', action, id: this.lastCallId, request, response });
        if (expectFailure) {
            throw new Error(`${action} was expected to fail but was answered ${JSON.stringify(response)}`);
        }
        return response;
    }
}

function expect(condition, message) {
    if (!condition) {
        throw new Error(message);
    }
}

// -- OCPP 1.6 -----------------------------------------------------------------------------------------
const BOOT = {
    'ocpp1.6': (identity) => ({
        chargePointVendor: 'ocpp-rpc', chargePointModel: 'strict-1.6', chargePointSerialNumber: identity,
        firmwareVersion: '2.2.1',
    }),
    'ocpp2.0.1': (identity) => ({
        reason: 'PowerUp',
        chargingStation: { model: 'strict-2.0.1', vendorName: 'ocpp-rpc', serialNumber: identity,
            firmwareVersion: '2.2.1' },
    }),
};

async function session16(ch) {
    const idTag = '04A1B2C3D4E5F6';
    const status = (connectorId, st) => ch.call('StatusNotification', {
        connectorId, errorCode: 'NoError', status: st, timestamp: now(),
    });
    const sample = (wh, context) => ({
        value: String(wh), context, measurand: ENERGY, location: 'Outlet', unit: 'Wh',
    });

    await status(0, 'Available');
    await status(1, 'Available');
    await ch.call('Heartbeat', {});
    await ch.call('Authorize', { idTag });
    await status(1, 'Preparing');
    const start = await ch.call('StartTransaction', {
        connectorId: 1, idTag, meterStart: 12000, timestamp: now(),
    });
    const tx = start.transactionId;
    expect(Number.isInteger(tx), `StartTransaction gave no integer transactionId: ${tx}`);
    await status(1, 'Charging');
    await ch.call('MeterValues', {
        connectorId: 1, transactionId: tx, meterValue: [{
            timestamp: now(),
            sampledValue: [sample(12500, 'Sample.Periodic'),
                { value: '7.4', context: 'Sample.Periodic', measurand: 'Power.Active.Import', unit: 'kW' }],
        }],
    });
    await ch.call('MeterValues', {
        connectorId: 1, transactionId: tx,
        meterValue: [{ timestamp: now(), sampledValue: [sample(13100, 'Sample.Periodic')] }],
    });
    await ch.call('DataTransfer', { vendorId: 'org.sitekeeper.tests', messageId: 'Ping', data: 'hello' });
    await ch.call('StopTransaction', {
        transactionId: tx, idTag, meterStop: 13750, timestamp: now(), reason: 'Local',
        transactionData: [{ timestamp: now(), sampledValue: [sample(13750, 'Transaction.End')] }],
    });
    await status(1, 'Finishing');
    await status(1, 'Available');
}

// -- OCPP 2.0.1 ---------------------------------------------------------------------------------------
async function session201(ch, identity) {
    const idToken = { idToken: '04A1B2C3D4E5F7', type: 'ISO14443' };
    const evse = { id: 1, connectorId: 1 };
    const transactionId = `${identity}-tx1`.slice(-36);
    const status = (connectorStatus) => ch.call('StatusNotification', {
        timestamp: now(), connectorStatus, evseId: 1, connectorId: 1,
    });
    const meter = (value, context, unit = 'Wh') => [{
        timestamp: now(), sampledValue: [{ value, context, measurand: ENERGY, unitOfMeasure: { unit } }],
    }];

    await status('Available');
    await ch.call('Heartbeat', {});
    await ch.call('Authorize', { idToken });
    await ch.call('TransactionEvent', {
        eventType: 'Started', timestamp: now(), triggerReason: 'Authorized', seqNo: 0,
        transactionInfo: { transactionId, chargingState: 'Charging' }, idToken, evse,
        meterValue: meter(2000, 'Transaction.Begin'),
    });
    await status('Occupied');
    await ch.call('TransactionEvent', {
        eventType: 'Updated', timestamp: now(), triggerReason: 'MeterValuePeriodic', seqNo: 1,
        transactionInfo: { transactionId, chargingState: 'Charging' }, evse,
        meterValue: meter(2600, 'Sample.Periodic'),
    });
    await ch.call('DataTransfer', { vendorId: 'org.sitekeeper.tests', messageId: 'Ping', data: 'hello' });
    await ch.call('TransactionEvent', {
        eventType: 'Ended', timestamp: now(), triggerReason: 'StopAuthorized', seqNo: 2,
        transactionInfo: { transactionId, chargingState: 'Idle', stoppedReason: 'Local' }, idToken, evse,
        meterValue: meter(3.25, 'Transaction.End', 'kWh'),
    });
    await status('Available');
}

// -- canary ---------------------------------------------------------------------------------------------
async function canary(ch) {
    await ch.call('Heartbeat', {});
    await sleep(500); // the edge's upstream link is surely live by now: the next answer is upstream's own
    const err = await ch.call('DataTransfer', { vendorId: 'org.sitekeeper.tests', messageId: 'BadAnswer' },
        { expectFailure: true });
    const caught = ch.strictFailures.some((f) => f.method === 'DataTransfer' && !f.outbound && !f.isCall);
    expect(caught, `DataTransfer was rejected, but not by strict validation: ${err.message}`);
}

// -- operated: answer what the CSMS asks (strict mode checks each inbound CALL against its schema) -------
const ANSWERS = {
    'ocpp1.6': {
        Reset: () => ({ status: 'Accepted' }),
        UnlockConnector: () => ({ status: 'Unlocked' }),
        ChangeAvailability: () => ({ status: 'Accepted' }),
        TriggerMessage: () => ({ status: 'Accepted' }),
        ClearCache: () => ({ status: 'Accepted' }),
        GetConfiguration: () => ({ configurationKey: [{ key: 'HeartbeatInterval', readonly: false, value: '300' }] }),
        ChangeConfiguration: () => ({ status: 'Accepted' }),
        RemoteStartTransaction: () => ({ status: 'Accepted' }),
        RemoteStopTransaction: () => ({ status: 'Accepted' }),
        GetLocalListVersion: () => ({ listVersion: 0 }),
        SendLocalList: () => ({ status: 'Accepted' }),
    },
    'ocpp2.0.1': {
        Reset: () => ({ status: 'Accepted' }),
        UnlockConnector: () => ({ status: 'Unlocked' }),
        ChangeAvailability: () => ({ status: 'Accepted' }),
        TriggerMessage: () => ({ status: 'Accepted' }),
        ClearCache: () => ({ status: 'Accepted' }),
        GetVariables: ({ params }) => ({ getVariableResult: params.getVariableData.map((d) => ({
            attributeStatus: 'Accepted', attributeValue: '300', component: d.component, variable: d.variable })) }),
        SetVariables: ({ params }) => ({ setVariableResult: params.setVariableData.map((d) => ({
            attributeStatus: 'Accepted', component: d.component, variable: d.variable })) }),
        GetBaseReport: () => ({ status: 'Accepted' }),
        RequestStartTransaction: () => ({ status: 'Accepted' }),
        RequestStopTransaction: () => ({ status: 'Accepted' }),
        GetLocalListVersion: () => ({ versionNumber: 0 }),
        SendLocalList: () => ({ status: 'Accepted' }),
    },
};

async function operated(ch, identity, protocol) {
    let finished;
    const done = new Promise((resolve) => { finished = resolve; });
    for (const [method, answer] of Object.entries(ANSWERS[protocol])) {
        ch.client.handle(method, answer);
    }
    ch.client.handle('DataTransfer', () => { finished(); return { status: 'Accepted' }; }); // the test's last
    emit({ type: 'ready' });
    await Promise.race([done, sleep(60000, undefined, { ref: false })
        .then(() => { throw new Error('no closing DataTransfer in 60 s'); })]);
}

const SCENARIOS = {
    session: (ch, identity, protocol) => (protocol === 'ocpp1.6' ? session16(ch) : session201(ch, identity)),
    canary,
    operated,
};

async function main() {
    const [url, identity, protocol, scenario] = process.argv.slice(2);
    if (!url || !identity || !['ocpp1.6', 'ocpp2.0.1'].includes(protocol) || !SCENARIOS[scenario]) {
        console.error('usage: node charger.js URL CHARGER_ID ocpp1.6|ocpp2.0.1 session|canary|operated');
        return 2;
    }
    const client = new RPCClient({
        endpoint: url, identity, protocols: [protocol], strictMode: true, reconnect: false,
        callTimeoutMs: 15000,
    });
    const ch = new Charger(client);
    // Like charger firmware, send BootNotification the moment the WebSocket opens: ocpp-rpc knows the
    // subprotocol (so strict validation applies) and flushes the CALL right after the handshake.
    let booted = Promise.reject(new Error('the edge chose no subprotocol'));
    booted.catch(() => {});
    client.once('protocol', () => {
        booted = ch.call('BootNotification', BOOT[protocol](identity));
        booted.catch(() => {});
    });
    try {
        await client.connect();
        expect(client.protocol === protocol, `edge chose subprotocol ${client.protocol}, not ${protocol}`);
        emit({ type: 'open', protocol: client.protocol });
        const boot = await booted;
        expect(boot.status === 'Accepted', `BootNotification not accepted: ${boot.status}`);
        await SCENARIOS[scenario](ch, identity, protocol);
        expect(ch.problems.length === 0, ch.problems.join('; '));
        if (scenario !== 'canary') {
            expect(ch.strictFailures.length === 0, 'strict validation failed (see strictValidationFailure lines)');
        }
        await client.close({ code: 1000, reason: 'scenario done', awaitPending: true });
        emit({ type: 'done' });
        return 0;
    } catch (err) {
        emit({ type: 'fatal', message: String(err && err.message ? err.message : err) });
        await client.close({ force: true }).catch(() => {});
        return 1;
    }
}

main().then((code) => {
    process.exitCode = code;
});
