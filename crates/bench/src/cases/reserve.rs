//! RESVSPACE of a thick disk vs `fallocate -l` and vs writing its zeros with `dd`.

use std::time::Duration;

use anyhow::Result;

use super::{compare, Bench, Contender};
use crate::measure::{self, cmd, s, size};

pub fn reserve(b: &mut Bench<'_>) -> Result<()> {
    let plan = b.plan.clone();
    let (ours, fa, dd) = (
        b.p("thick-flat.vmdk"),
        b.p("fa-flat.vmdk"),
        b.p("dd-flat.vmdk"),
    );
    let session = &b.session;
    let len = plan.reserve.to_string();
    let count = format!("count={}", plan.dd >> 20);
    let of = format!("of={}", s(&dd));
    let mut contenders: Vec<Contender<'_>> = vec![
        Box::new(|| session.reserve("thick-flat.vmdk", plan.reserve)),
        Box::new(|| {
            cmd("fallocate", &["-l", &len, s(&fa)])?;
            cmd("sync", &[s(&fa)])?;
            Ok(())
        }),
        Box::new(|| {
            cmd(
                "dd",
                &[
                    "if=/dev/zero",
                    &of,
                    "bs=1M",
                    &count,
                    "conv=fsync",
                    "status=none",
                ],
            )?;
            Ok(())
        }),
    ];
    // ESXi creates the file and sets its length before RESVSPACE: so does the reset.
    let export = b.export.clone();
    let ours_c = ours.clone();
    let times = b.race(&mut contenders, &mut || {
        super::rm(
            &export,
            &["thick-flat.vmdk", "fa-flat.vmdk", "dd-flat.vmdk"],
        );
        let f = std::fs::File::create(&ours_c).expect("creating the thick disk");
        f.set_len(plan.reserve).expect("setting its length");
    })?;
    drop(contenders);
    b.rm(&["thick-flat.vmdk"]);
    let what = format!(
        "reserve {} (RESVSPACE, length already set)",
        size(plan.reserve)
    );
    b.push(compare(
        "reserve-fallocate",
        what.clone(),
        &times[0],
        &format!("`fallocate -l {}` + `sync FILE`", size(plan.reserve)),
        &times[1],
        None,
        "< 100 ms",
        |o, _| o < Duration::from_millis(100),
    ));
    let scale = plan.reserve as f64 / plan.dd as f64;
    let dd_time = times[2]
        .clone()
        .map(|t| Duration::from_secs_f64(t.as_secs_f64() * scale));
    let mut row = compare(
        "reserve-dd",
        what,
        &times[0],
        &format!(
            "`dd if=/dev/zero bs=1M conv=fsync`: {} written and timed, ×{scale:.0} for {}",
            size(plan.dd),
            size(plan.reserve)
        ),
        &dd_time,
        None,
        "",
        |_, _| true,
    );
    if let (Ok(t), Ok(_)) = (&times[2], &dd_time) {
        row.peer_figure = format!(
            "{} extrapolated ({} for {})",
            row.peer_figure,
            measure::dur_rate(*t, plan.dd),
            size(plan.dd)
        );
    }
    b.push(row);
    Ok(())
}
