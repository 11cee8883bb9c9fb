import { createHash, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { CairnError, ErrorCodes } from '@cairn/common';
import { CONFIG, type ControlPlaneConfig } from '../config.js';

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/** `/v1/*` requires `Authorization: Bearer $CAIRN_API_TOKEN`. */
@Injectable()
export class ApiTokenGuard implements CanActivate {
  private readonly expected: Buffer;

  constructor(@Inject(CONFIG) config: ControlPlaneConfig) {
    this.expected = digest(config.apiToken);
  }

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ headers: Record<string, string | string[] | undefined> }>();
    const header = request.headers['authorization'];
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match?.[1]) {
      throw new CairnError(ErrorCodes.UNAUTHENTICATED, 'missing credential: send the header Authorization: Bearer <CAIRN_API_TOKEN>');
    }
    if (!timingSafeEqual(digest(match[1]), this.expected)) {
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        'invalid API token: send the token the control plane was started with (CAIRN_API_TOKEN)',
      );
    }
    return true;
  }
}
