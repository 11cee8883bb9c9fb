// The project the page is about comes from the URL (/p/:project/…), so every link can be shared.
import { useParams } from '@tanstack/react-router';

export function useProject(): string {
  return useParams({ strict: false, select: (p: { project?: string }) => p.project ?? '' });
}
