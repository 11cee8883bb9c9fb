import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * A structured JSON logger with a component name. Correlation IDs (run, request) go in child
 * loggers: `logger.child({ runId })`. Nothing that may hold customer data is ever passed to a
 * control-plane logger.
 */
export function createLogger(component: string, level: string = process.env['CAIRN_LOG_LEVEL'] ?? 'info'): Logger {
  return pino({
    level,
    base: { component },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
