// What a payload panel says when the gateway could not give it: the gateway's own message, plus
// what to do for the cases a user can act on (a token without the scope, a payload the gateway
// cannot decrypt). The panel shows this instead of going blank.
import type { ReactNode } from 'react';
import { ApiError } from '../../api/errors.js';
import { ErrorMessage } from '../../components/common.js';

/** Gateway codes: the token lacks a scope; a payload failed to decrypt; it was sealed with a key the gateway does not hold. */
const SCOPE_MISSING = 'CAIRN-1144';
const DECRYPT_FAILED = 'CAIRN-3002';
const UNKNOWN_KEY = 'CAIRN-3003';

/** An error of a gateway call, with the step a user can take. */
export function PanelError({ error, what, verb = 'read' }: { error: unknown; what: string; verb?: string }): ReactNode {
  if (error instanceof ApiError && error.code === SCOPE_MISSING) {
    return (
      <ErrorMessage
        title={`The gateway token may not ${verb} ${what}`}
        error={new ApiError('answer', `${error.message} Set a gateway token with that scope under Data planes.`, error.status, error.code)}
      />
    );
  }
  if (error instanceof ApiError && (error.code === DECRYPT_FAILED || error.code === UNKNOWN_KEY)) {
    return (
      <ErrorMessage
        title={`The gateway could not decrypt ${what}`}
        error={
          new ApiError(
            'answer',
            `${error.message} The payload itself is kept: it shows here once the gateway holds the key it was sealed with.`,
            error.status,
            error.code,
          )
        }
      />
    );
  }
  return <ErrorMessage error={error} title={`Could not ${verb} ${what}`} />;
}
