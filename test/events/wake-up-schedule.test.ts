import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WakeUpSchedule } from '../../src/events/wake-up-schedule.js';

describe('WakeUpSchedule: which appends carry the wake-up NOTIFY', () => {
  let standalone: number;
  let schedule: WakeUpSchedule;
  beforeEach(() => {
    vi.useFakeTimers();
    standalone = 0;
    schedule = new WakeUpSchedule(2, async () => {
      standalone++;
    });
  });
  afterEach(() => {
    schedule.close();
    vi.useRealTimers();
  });

  it('lets the first append after a quiet spell carry, and no other within its interval', () => {
    expect(schedule.carry()).toBe(true);
    expect(schedule.carry()).toBe(false);
    vi.advanceTimersByTime(1);
    expect(schedule.carry()).toBe(false);
    vi.advanceTimersByTime(1);
    expect(schedule.carry()).toBe(true);
  });

  it('sends nothing on its own when every stored append was carried', () => {
    schedule.settled(schedule.carry(), 'stored');
    vi.advanceTimersByTime(100);
    expect(standalone).toBe(0);
  });

  it('covers appends inside the interval with the next carrier under load', () => {
    schedule.settled(schedule.carry(), 'stored');
    schedule.settled(schedule.carry(), 'stored'); // inside the interval: uncovered
    vi.advanceTimersByTime(2); // the interval ends; one more interval of grace
    vi.advanceTimersByTime(1);
    expect(schedule.carry()).toBe(true); // it commits after the uncovered one: covers it
    schedule.settled(true, 'stored');
    vi.advanceTimersByTime(100);
    expect(standalone).toBe(0);
  });

  it('sends one NOTIFY of its own when a burst ends with uncovered appends', () => {
    schedule.settled(schedule.carry(), 'stored');
    for (let i = 0; i < 10; i++) schedule.settled(schedule.carry(), 'stored');
    vi.advanceTimersByTime(3);
    expect(standalone).toBe(0); // still in the grace interval
    vi.advanceTimersByTime(1);
    expect(standalone).toBe(1);
    vi.advanceTimersByTime(100);
    expect(standalone).toBe(1);
  });

  it('covers an append that settles after the interval ended', () => {
    const slow = schedule.carry();
    const slower = schedule.carry();
    schedule.settled(slow, 'stored');
    vi.advanceTimersByTime(10); // interval over, nothing uncovered yet
    expect(standalone).toBe(0);
    schedule.settled(slower, 'stored'); // it commits now: nothing carries for it
    vi.advanceTimersByTime(2);
    expect(standalone).toBe(1);
  });

  it('treats a carrier that failed as not delivered', () => {
    schedule.settled(schedule.carry(), 'unknown');
    vi.advanceTimersByTime(4);
    expect(standalone).toBe(1);
  });

  it('needs no wake-up for an uncarried append that stored nothing', () => {
    schedule.settled(schedule.carry(), 'stored');
    schedule.settled(schedule.carry(), 'nothing'); // a conflict or a replay
    vi.advanceTimersByTime(100);
    expect(standalone).toBe(0);
  });

  it('stops when closed', () => {
    schedule.settled(schedule.carry(), 'stored');
    schedule.settled(schedule.carry(), 'stored');
    schedule.close();
    vi.advanceTimersByTime(100);
    expect(standalone).toBe(0);
    expect(schedule.carry()).toBe(false);
  });

  it('refuses an interval that is not a number of ms', () => {
    expect(() => new WakeUpSchedule(Number.NaN, async () => {})).toThrow(/notify interval/);
    expect(() => new WakeUpSchedule(-1, async () => {})).toThrow(/notify interval/);
  });
});
