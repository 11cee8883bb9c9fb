import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { QueryCache, QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { RouterProvider } from '@tanstack/react-router';
import { isUnauthenticated } from './api/control-plane.js';
import { ApiError } from './api/errors.js';
import { clearSession } from './session.js';
import { signInFromFragment } from './signin-link.js';
import { createConsoleRouter } from './router.js';
import './styles.css';

// `cairn dev` prints a link whose fragment holds the local stack's key and gateway; take them
// before anything renders and drop the fragment from the address bar and the history.
signInFromFragment();

const queryClient = new QueryClient({
  // A key that the control plane stops accepting (revoked, expired) ends the session.
  queryCache: new QueryCache({
    onError: (error) => {
      if (!isUnauthenticated(error)) return;
      clearSession();
      window.location.assign(`/signin?next=${encodeURIComponent(window.location.pathname + window.location.search)}`);
    },
  }),
  defaultOptions: {
    queries: {
      // An answer the server refused will be refused again: no retries for 4xx.
      retry: (count, error) => !(error instanceof ApiError && error.status !== null && error.status < 500) && count < 2,
      refetchOnWindowFocus: false,
      staleTime: 2_000,
    },
  },
});
const router = createConsoleRouter(queryClient);

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <RouterProvider router={router} />
    </QueryClientProvider>
  </StrictMode>,
);
