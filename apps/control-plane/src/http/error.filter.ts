import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { CairnError, ErrorCodes, retryAfterSeconds, type Logger } from '@cairn/common';
import { errorSummary, isDatabaseUnavailable, isStatementTimeout, STATEMENT_TIMEOUT_MESSAGE } from '../db/database.js';

/** The Fastify reply, as far as this filter uses it. */
interface Reply {
  status(code: number): Reply;
  header(name: string, value: string): Reply;
  send(body: unknown): unknown;
}

const STATUS_BY_CODE: Partial<Record<string, number>> = {
  [ErrorCodes.INVALID_ARGUMENT]: 400,
  [ErrorCodes.INVALID_NAME]: 400,
  [ErrorCodes.MALFORMED_JSON]: 400,
  [ErrorCodes.UNAUTHENTICATED]: 401,
  [ErrorCodes.NOT_FOUND]: 404,
  [ErrorCodes.WORKFLOW_NOT_FOUND]: 404,
  [ErrorCodes.CONFLICT]: 409,
  [ErrorCodes.PAYLOAD_TOO_LARGE]: 413,
  [ErrorCodes.UNSUPPORTED_MEDIA_TYPE]: 415,
  [ErrorCodes.UNAVAILABLE]: 503,
  [ErrorCodes.FORBIDDEN]: 403,
  [ErrorCodes.QUOTA_EXCEEDED]: 429,
  [ErrorCodes.RATE_LIMITED]: 429,
  [ErrorCodes.WORKFLOW_NOT_REGISTERED]: 409,
  [ErrorCodes.FAILED_PRECONDITION]: 409,
  [ErrorCodes.CREDENTIAL_THROTTLED]: 429,
  [ErrorCodes.AUDIT_CHAIN_BROKEN]: 409,
  [ErrorCodes.AUDIT_SIGNING_DISABLED]: 409,
};

const CODE_BY_STATUS: Partial<Record<number, string>> = {
  400: ErrorCodes.INVALID_ARGUMENT,
  401: ErrorCodes.UNAUTHENTICATED,
  403: ErrorCodes.FORBIDDEN,
  404: ErrorCodes.NOT_FOUND,
  405: ErrorCodes.NOT_FOUND,
  409: ErrorCodes.CONFLICT,
  413: ErrorCodes.PAYLOAD_TOO_LARGE,
  415: ErrorCodes.UNSUPPORTED_MEDIA_TYPE,
  503: ErrorCodes.UNAVAILABLE,
};

/**
 * The REST edge's error mapping: every error becomes `{"error":{"code":"CAIRN-NNNN","message":...}}`
 * with the HTTP status for its domain code. Unexpected errors are logged and answered 500 without
 * detail.
 */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const reply = http.getResponse<Reply>();
    const request = http.getRequest<{ id?: string }>();
    let status = 500;
    let code: string = ErrorCodes.INTERNAL;
    let message = `internal error (request ${request.id ?? 'unknown'}); see the control-plane logs`;
    if (exception instanceof CairnError && STATUS_BY_CODE[exception.code] !== undefined) {
      status = STATUS_BY_CODE[exception.code]!;
      code = exception.code;
      message = exception.rawMessage;
      const wait = retryAfterSeconds(exception);
      if (wait !== undefined) void reply.header('retry-after', String(wait));
    } else if (exception instanceof HttpException && exception.getStatus() < 500) {
      status = exception.getStatus();
      code = CODE_BY_STATUS[status] ?? ErrorCodes.INVALID_ARGUMENT;
      message = status === 404 ? 'no such endpoint: see the control-plane README for the API' : exception.message;
    } else if (isStatementTimeout(exception)) {
      this.logger.warn(
        { reqId: request.id, err: errorSummary(exception) },
        'request failed: a database statement ran past the statement timeout',
      );
      status = 503;
      code = ErrorCodes.STATEMENT_TIMEOUT;
      message = STATEMENT_TIMEOUT_MESSAGE;
      void reply.header('retry-after', '1');
    } else if (isDatabaseUnavailable(exception)) {
      this.logger.warn({ reqId: request.id, err: errorSummary(exception) }, 'request failed: database unavailable');
      status = 503;
      code = ErrorCodes.UNAVAILABLE;
      message = 'the control plane cannot reach its database right now; retry shortly';
    } else {
      this.logger.error({ reqId: request.id, err: errorSummary(exception) }, 'request failed');
    }
    void reply.status(status).header('content-type', 'application/json; charset=utf-8').send({ error: { code, message } });
  }
}
