/** DI token of the control plane's pino logger. */
export const LOGGER = Symbol('Logger');
