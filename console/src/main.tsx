import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { App } from './App.tsx';
import { ApiError, get } from './api.ts';
import './styles.css';

const client = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 5_000,
      // A 4xx will not change by asking again; a network blip might.
      retry: (n, e) => !(e instanceof ApiError && e.status < 500) && n < 2,
      refetchOnWindowFocus: true,
    },
  },
});

// Opening the overview: ask for its figures while the session is still being checked, so the
// first chart waits for one round trip, not two. Signed out, this fails quietly and is not used.
if (/^\/console\/?$/.test(location.pathname)) {
  void client.prefetchQuery({
    queryKey: ['stats', 60],
    queryFn: () => get('/v1/payments/stats?window_minutes=60'),
    retry: false,
  });
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={client}>
      <App />
    </QueryClientProvider>
  </StrictMode>,
);
