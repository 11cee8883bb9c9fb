import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { retryAfterSeconds } from '@cairn/common';
import { fromServiceError } from './control-plane.js';
import { httpStatus } from './errors.js';

const failure = (code: grpc.status, details: string): grpc.ServiceError =>
  Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });

test("a quota refusal from the control plane becomes 429 with the control plane's code and message", () => {
  const message = 'project prod is at its concurrent-run quota (maxConcurrentRuns): 5 of 5 runs have not ended. Retry when runs end.';
  const error = fromServiceError('StartRun', failure(grpc.status.RESOURCE_EXHAUSTED, `[CAIRN-1112] ${message}`), 1000, true);
  assert.deepEqual([error.code, error.rawMessage, httpStatus(error)], ['CAIRN-1112', message, 429]);
  const limited = fromServiceError('StartRun', failure(grpc.status.RESOURCE_EXHAUSTED, '[CAIRN-1113] too many starts'), 1000, true);
  assert.deepEqual([limited.code, httpStatus(limited)], ['CAIRN-1113', 429]);
});

test("a control plane's rate limit or per-data-plane cap becomes 429 with its retry-after as Retry-After", () => {
  const withWait = (details: string, wait: string): grpc.ServiceError => {
    const error = failure(grpc.status.RESOURCE_EXHAUSTED, details);
    error.metadata.set('retry-after', wait);
    return error;
  };
  const rate = fromServiceError('StartRun', withWait('[CAIRN-1113] too many requests: this data plane may make 1000 …', '2'), 1000, true);
  assert.deepEqual([rate.code, httpStatus(rate), retryAfterSeconds(rate)], ['CAIRN-1113', 429, 2]);
  const waits = fromServiceError(
    'WaitRun',
    withWait('[CAIRN-1172] this data plane already has 512 WaitRun calls in flight …', '1'),
    1000,
    true,
  );
  assert.deepEqual([waits.code, httpStatus(waits), retryAfterSeconds(waits)], ['CAIRN-1113', 429, 1]);
  assert.match(waits.rawMessage, /512 WaitRun calls in flight/);
});

test('RESOURCE_EXHAUSTED from the gRPC transport itself stays a retryable 503', () => {
  const error = fromServiceError('StartRun', failure(grpc.status.RESOURCE_EXHAUSTED, 'Received message larger than max'), 1000, true);
  assert.deepEqual([error.code, httpStatus(error)], ['CAIRN-1110', 503]);
});

test("the control plane's own code is not repeated in the message", () => {
  const error = fromServiceError(
    'SignalRun',
    failure(
      grpc.status.FAILED_PRECONDITION,
      '[CAIRN-1108] run 5d0c… already ended (completed): signals can only be sent to a run that has not ended',
    ),
    1000,
    true,
  );
  assert.equal(error.code, 'CAIRN-1108');
  assert.equal(error.message, '[CAIRN-1108] run 5d0c… already ended (completed): signals can only be sent to a run that has not ended');
  const missing = fromServiceError('DescribeRun', failure(grpc.status.NOT_FOUND, '[CAIRN-1105] run 5d0c… not found'), 1000, true);
  assert.equal(missing.message, '[CAIRN-1105] run 5d0c… not found');
});
