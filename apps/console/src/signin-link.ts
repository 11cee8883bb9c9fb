// A sign-in link: `/#key=<API key>&gateway=<URL>&gatewayToken=<token>`. The fragment never
// reaches a server (browsers do not send it), so the key is not in any request line or log; it is
// read once here, kept for the tab's session and removed from the address bar and history.
import { ANY_DATA_PLANE, saveGateway } from './gateways.js';
import { writeSession } from './session.js';

export function signInFromFragment(): void {
  const hash = window.location.hash.replace(/^#/, '');
  if (hash === '') return;
  const params = new URLSearchParams(hash);
  const key = params.get('key');
  if (key === null || key === '') return;
  writeSession({ apiKey: key });
  const gateway = params.get('gateway');
  if (gateway !== null && gateway !== '') {
    saveGateway(params.get('dataPlane') ?? ANY_DATA_PLANE, {
      url: gateway,
      token: params.get('gatewayToken') ?? '',
      remember: false,
    });
  }
  window.history.replaceState(null, '', window.location.pathname + window.location.search);
}
